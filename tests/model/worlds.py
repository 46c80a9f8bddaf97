"""Random worlds for the policy model (decision 0028), reproducible from one integer seed.

A world is small on purpose (1–3 children, a few staff, guardians and outside recipients, a
few records) so that the rules meet each other often: a group record whose children are
covered by different rules, an order and a consent about the same parent, a share listing
a record its basis does not cover. Every instant is a whole number of hours from `NOW`, so
windows that start or end exactly at the moment asked about are common (the half-open rule).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.model.model import (
    KNOWN_CATEGORIES,
    Assignment,
    Consent,
    CourtOrder,
    Guardianship,
    Person,
    Record,
    RoomChild,
    RoomStaff,
    Share,
    Window,
    World,
)

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ASSIGNMENT_ROLES = ("educator", "manager", "dsl")
HELD_ROLES = ("educator", "manager", "dsl", "admin")


@dataclass(frozen=True)
class Query:
    principal_id: str
    action: str  # "read" or "add"
    record_id: str
    now: datetime


def _at(rng: random.Random, span: int = 4) -> datetime:
    return NOW + timedelta(hours=rng.randint(-span, span))


def _window(rng: random.Random, *, open_end: bool) -> Window:
    """Mostly in force now; else not yet started or ended, often exactly at now."""
    shape = rng.random()
    if shape < 0.7:
        start = NOW - timedelta(hours=rng.randint(0, 4))
        if open_end and rng.random() < 0.4:
            return Window(start, None)
        return Window(start, NOW + timedelta(hours=rng.randint(1, 4)))
    if shape < 0.85:
        start = (
            NOW + timedelta(hours=rng.randint(0, 3) or 1)
            if rng.random() < 0.8
            else NOW + timedelta(hours=1)
        )
        return Window(
            start, None if open_end and rng.random() < 0.4 else start + timedelta(hours=2)
        )
    end = NOW - timedelta(hours=rng.randint(0, 3))
    # A window that ends where it starts never counts.
    return Window(end - timedelta(hours=rng.randint(0, 3)), end)


def _some(
    rng: random.Random, items: tuple[str, ...] | list[str], *, empty: float = 0.0
) -> tuple[str, ...]:
    if rng.random() < empty:
        return ()
    return tuple(sorted(rng.sample(list(items), rng.randint(1, len(items)))))


def _categories(rng: random.Random, *, empty: float) -> tuple[str, ...]:
    # Mostly a few categories, so that "covers" and "does not cover" both happen.
    if rng.random() < empty:
        return ()
    return tuple(sorted(rng.sample(KNOWN_CATEGORIES, rng.randint(2, 6))))


def world(seed: int, *, shredding: bool = True, rooms: bool = True) -> tuple[World, Query]:
    """The world of `seed` and the question asked in it."""
    rng = random.Random(seed)
    w = World()
    w.children = [f"c{i}" for i in range(rng.randint(1, 3))]
    if shredding:
        w.shredded = {c for c in w.children if rng.random() < 0.12}
    staff = [f"s{i}" for i in range(rng.randint(1, 3))]
    guardians = [f"g{i}" for i in range(rng.randint(1, 3))]
    outside = [f"o{i}" for i in range(rng.randint(1, 2))]
    for sid in staff:
        roles = tuple(sorted({rng.choice(HELD_ROLES) for _ in range(rng.randint(1, 2))}))
        w.people[sid] = Person(sid, "staff", roles, rng.random() < 0.93, rng.random() < 0.05)
    for gid in guardians:
        w.people[gid] = Person(gid, "guardian", (), rng.random() < 0.95, rng.random() < 0.04)
    for oid in outside:
        w.people[oid] = Person(oid, "outside", (), rng.random() < 0.95, rng.random() < 0.04)

    for i in range(rng.randint(0, 4)):
        w.assignments.append(
            Assignment(
                f"as{i}",
                rng.choice(staff),
                rng.choice(w.children),
                rng.choice(ASSIGNMENT_ROLES),
                _window(rng, open_end=True),
            )
        )
    if rooms:
        room_ids = ["r0", "r1"]
        for _ in range(rng.randint(0, 3)):
            w.room_staff.append(
                RoomStaff(
                    rng.choice(staff),
                    rng.choice(room_ids),
                    rng.choice(ASSIGNMENT_ROLES),
                    _window(rng, open_end=True),
                )
            )
        for _ in range(rng.randint(0, 3)):
            w.room_children.append(
                RoomChild(rng.choice(w.children), rng.choice(room_ids), _window(rng, open_end=True))
            )

    pairs = {(g, c) for g in guardians for c in w.children if rng.random() < 0.5}
    for i, (gid, cid) in enumerate(sorted(pairs)):
        w.guardianships.append(Guardianship(f"gs{i}", gid, cid, rng.random() < 0.8))

    for i in range(rng.randint(0, 2)):
        w.orders.append(
            CourtOrder(
                f"rs{i}",
                rng.choice(w.children),
                "restrict",
                rng.choice(guardians),
                _categories(rng, empty=0.25),
                _window(rng, open_end=False),
            )
        )
    for i in range(rng.randint(0, 2)):
        w.orders.append(
            CourtOrder(
                f"dc{i}",
                rng.choice(w.children),
                "disclose",
                rng.choice(outside),
                _categories(rng, empty=0.15),
                _window(rng, open_end=False),
            )
        )
    for i in range(rng.randint(0, 3)):
        given = _window(rng, open_end=False)
        withdrawn = _at(rng) if rng.random() < 0.25 else None
        child = rng.choice(w.children)
        # Mostly a guardian of that child, so that consents are often good ones.
        theirs = [g.guardian_id for g in w.guardianships if g.child_id == child]
        giver = rng.choice(theirs) if theirs and rng.random() < 0.8 else rng.choice(guardians)
        w.consents.append(
            Consent(
                f"cn{i}",
                child,
                giver,
                rng.choice(outside),
                _categories(rng, empty=0.1),
                given,
                withdrawn,
            )
        )

    categories = (*KNOWN_CATEGORIES, "safeguarding", "photo", "unknown-kind")
    for i in range(rng.randint(1, 4)):
        draw = rng.random()
        # Mostly one child; sometimes a group record; rarely none.
        child_ids = (
            ()
            if draw < 0.03
            else (rng.choice(w.children),)
            if draw < 0.7
            else _some(rng, w.children)
        )
        rid = f"rec{i}"
        w.records[rid] = Record(rid, child_ids, rng.choice(categories), rng.random() < 0.15)

    bases = [("consent", c.consent_id, c.recipient_id, c.child_id) for c in w.consents]
    bases += [
        ("court_order", o.order_id, o.subject_id, o.child_id)
        for o in w.orders
        if o.kind == "disclose"
    ]
    for i in range(rng.randint(0, 3) if bases else 0):
        kind, basis_id, named, child = rng.choice(bases)
        recipient = named if rng.random() < 0.85 else rng.choice(outside)
        # Mostly records of the basis's child, as a lead would share them.
        of_child = [r for r in w.records.values() if child in r.child_ids]
        if kind == "consent" and rng.random() < 0.5:
            # Often only what the consent names, as a careful lead would.
            named_cats = next(c.categories for c in w.consents if c.consent_id == basis_id)
            of_child = [r for r in of_child if r.category in named_cats]
        listed = (
            _some(rng, [r.record_id for r in of_child]) if of_child and rng.random() < 0.8 else ()
        )
        revoked = _at(rng) if rng.random() < 0.2 else None
        w.shares.append(
            Share(
                f"sh{i}",
                recipient,
                kind,
                basis_id,
                listed or _some(rng, list(w.records)),
                _window(rng, open_end=False),
                revoked,
                False,
            )
        )

    kind = rng.random()
    pool = staff if kind < 0.3 else guardians if kind < 0.55 else outside
    action = "add" if rng.random() < 0.15 else "read"
    asker = rng.choice(pool)
    theirs = sorted({r for s in w.shares if s.recipient_id == asker for r in s.record_ids})
    record_id = (
        rng.choice(theirs) if theirs and rng.random() < 0.85 else rng.choice(list(w.records))
    )
    query = Query(asker, action, record_id, NOW)
    return w, query


def _at_hour(moment: datetime | None) -> str:
    return "never" if moment is None else f"{(moment - NOW).total_seconds() / 3600:+g}h"


def describe(w: World, q: Query) -> str:
    """A short plain description of a world, for a mismatch's message."""

    def win(x: Window) -> str:
        def h(t: datetime | None) -> str:
            return "∞" if t is None else f"{int((t - NOW).total_seconds() // 3600):+d}h"

        return f"[{h(x.start)},{h(x.end)})"

    lines = [f"asked: {q.principal_id} {q.action} {q.record_id} at now (times in hours from now)"]
    lines.append(f"children {w.children} shredded {sorted(w.shredded)}")
    lines += [f"person {p}" for p in w.people.values()]
    lines += [f"record {r}" for r in w.records.values()]
    lines += [
        f"assignment {a.assignment_id} {a.staff_id}->{a.child_id} {a.role} {win(a.window)}"
        for a in w.assignments
    ]
    lines += [f"room staff {m.staff_id} {m.room_id} {m.role} {win(m.window)}" for m in w.room_staff]
    lines += [f"room child {m.child_id} {m.room_id} {win(m.window)}" for m in w.room_children]
    lines += [f"guardianship {g}" for g in w.guardianships]
    lines += [
        f"order {o.order_id} {o.kind} {o.subject_id} child {o.child_id} {o.categories} "
        f"{win(o.window)}"
        for o in w.orders
    ]
    lines += [
        f"consent {c.consent_id} {c.guardian_id}->{c.recipient_id} child {c.child_id} "
        f"{c.categories} {win(c.window)} withdrawn {_at_hour(c.withdrawn_at)}"
        for c in w.consents
    ]
    lines += [
        f"share {s.share_id} to {s.recipient_id} on {s.basis_kind} {s.basis_id} {s.record_ids} "
        f"{win(s.window)} revoked {_at_hour(s.revoked_at)} cap spent {s.cap_spent}"
        for s in w.shares
    ]
    return "\n".join(lines)
