"""A second, deliberately plain implementation of docs/POLICY.md (decision 0028).

Written from the document (its rules, its "Everything else is refused" list, its notes on times,
shares and shredded children) and from DESIGN.md's rules of release, never from
keyservice/policy. It answers only what the document answers: released or not, and on which
basis. It is slow on purpose: every rule is a loop over the world, in the order the document
reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# The record format's categories (docs/FORMAT.md); anything else is "unknown", never released.
KNOWN_CATEGORIES = (
    "observation",
    "incident",
    "medical",
    "photo",
    "consent-form",
    "correspondence",
    "safeguarding",
)
LEAD_ROLES = ("dsl", "manager")


@dataclass(frozen=True)
class Window:
    """Counts from `start` up to, but not including, `end` (None: no end)."""

    start: datetime
    end: datetime | None

    def holds(self, now: datetime) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


@dataclass(frozen=True)
class Assignment:
    assignment_id: str
    staff_id: str
    child_id: str
    role: str
    window: Window


@dataclass(frozen=True)
class RoomStaff:
    staff_id: str
    room_id: str
    role: str
    window: Window


@dataclass(frozen=True)
class RoomChild:
    child_id: str
    room_id: str
    window: Window


@dataclass(frozen=True)
class Guardianship:
    guardianship_id: str
    guardian_id: str
    child_id: str
    parental_responsibility: bool


@dataclass(frozen=True)
class CourtOrder:
    order_id: str
    child_id: str
    kind: str  # "restrict" (a guardian) or "disclose" (to an outside recipient)
    subject_id: str  # the restricted guardian, or the recipient disclosed to
    categories: tuple[str, ...]
    window: Window


@dataclass(frozen=True)
class Consent:
    consent_id: str
    child_id: str
    guardian_id: str
    recipient_id: str
    categories: tuple[str, ...]
    window: Window
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class Share:
    share_id: str
    recipient_id: str
    basis_kind: str  # "consent" or "court_order"
    basis_id: str
    record_ids: tuple[str, ...]
    window: Window
    revoked_at: datetime | None
    cap_spent: bool  # a download cap with nothing left


@dataclass(frozen=True)
class Record:
    record_id: str
    child_ids: tuple[str, ...]
    category: str
    withheld_from_guardians: bool


@dataclass(frozen=True)
class Person:
    principal_id: str
    kind: str  # "staff", "guardian", "outside"
    roles: tuple[str, ...]  # roles held now (staff)
    active: bool
    device_revoked: bool


@dataclass
class World:
    children: list[str] = field(default_factory=list)
    shredded: set[str] = field(default_factory=set)
    people: dict[str, Person] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    room_staff: list[RoomStaff] = field(default_factory=list)
    room_children: list[RoomChild] = field(default_factory=list)
    guardianships: list[Guardianship] = field(default_factory=list)
    orders: list[CourtOrder] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    shares: list[Share] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    """What the document says: released or not, and the basis (None for a refusal).

    ``acceptable``: every basis the document allows the decision to record. It is more than one
    only when one child is covered through two shares resting on a consent and on a court
    order: the document does not say which of them a release without ``share_id`` rests on.
    """

    allowed: bool
    basis: str | None
    why: str
    acceptable: tuple[str, ...] = ()


def _no(why: str) -> Answer:
    return Answer(False, None, why, ("none",))


def _overlap(a: Window, b: Window) -> Window | None:
    start = max(a.start, b.start)
    ends = [end for end in (a.end, b.end) if end is not None]
    end = min(ends) if ends else None
    if end is not None and end <= start:
        return None
    return Window(start, end)


def staff_assignments(world: World, staff_id: str, child_id: str) -> list[Assignment]:
    """Direct assignments, and room memberships read as assignments for their overlap (0018)."""
    found = [a for a in world.assignments if a.staff_id == staff_id and a.child_id == child_id]
    for member in world.room_staff:
        if member.staff_id != staff_id:
            continue
        for child in world.room_children:
            if child.child_id != child_id or child.room_id != member.room_id:
                continue
            window = _overlap(member.window, child.window)
            if window is not None:
                room_id = f"room:{member.room_id}"
                found.append(Assignment(room_id, staff_id, child_id, member.role, window))
    return found


def _staff_covers(
    world: World, person: Person, record: Record, child_id: str, now: datetime
) -> str | None:
    """Rule 1. None when covered, else why not."""
    live = [
        a for a in staff_assignments(world, person.principal_id, child_id) if a.window.holds(now)
    ]
    if not live:
        return "not assigned"
    # Safeguarding: assigned as DSL or manager, and still holding that role.
    if record.category == "safeguarding" and not any(
        a.role in LEAD_ROLES and a.role in person.roles for a in live
    ):
        return "not assigned as DSL or manager"
    return None


def _restricted(
    world: World, guardian_id: str, child_id: str, category: str, now: datetime
) -> bool:
    for order in world.orders:
        if (
            order.kind != "restrict"
            or order.child_id != child_id
            or order.subject_id != guardian_id
        ):
            continue
        if not order.window.holds(now):
            continue
        # An order that lists no categories restricts all of them.
        if not order.categories or category in order.categories:
            return True
    return False


def _guardian_may_read(
    world: World, guardian_id: str, record: Record, child_id: str, now: datetime
) -> str | None:
    """Rule 2, for a guardian and one child. None when they may read it."""
    ships = [
        g for g in world.guardianships if g.guardian_id == guardian_id and g.child_id == child_id
    ]
    if not ships:
        return "not a guardian"
    if not any(g.parental_responsibility for g in ships):
        return "no parental responsibility"
    if record.category == "safeguarding":
        return "safeguarding never to guardians"
    if record.withheld_from_guardians:
        return "withheld from guardians"
    if _restricted(world, guardian_id, child_id, record.category, now):
        return "restricted by a court order"
    return None


def _share_live(share: Share, now: datetime) -> bool:
    if not share.window.holds(now):
        return False
    return share.revoked_at is None or now < share.revoked_at


def _outside_covers(
    world: World, person: Person, record: Record, child_id: str, now: datetime
) -> set[str]:
    """Rules 3 and 4 for one child: the bases ("consent", "court_order") of the shares that
    cover it; empty if none does."""
    found: set[str] = set()
    for share in world.shares:
        if share.recipient_id != person.principal_id or record.record_id not in share.record_ids:
            continue
        if not _share_live(share, now) or share.cap_spent:
            continue
        if share.basis_kind == "consent":
            consent = next(c for c in world.consents if c.consent_id == share.basis_id)
            if consent.recipient_id != person.principal_id or consent.child_id != child_id:
                continue
            if record.category not in consent.categories:
                continue
            if not consent.window.holds(now):
                continue
            if consent.withdrawn_at is not None and now >= consent.withdrawn_at:
                continue
            # A parent can only consent to what they could read themselves.
            if _guardian_may_read(world, consent.guardian_id, record, child_id, now) is not None:
                continue
            found.add("consent")
            continue
        order = next(o for o in world.orders if o.order_id == share.basis_id)
        if order.kind != "disclose" or order.subject_id != person.principal_id:
            continue
        if order.child_id != child_id or not order.window.holds(now):
            continue
        # An order that lists no categories discloses nothing.
        if record.category not in order.categories:
            continue
        found.add("court_order")
    return found


def decide(
    world: World, *, principal_id: str, action: str, record_id: str, now: datetime
) -> Answer:
    """Whether `principal_id` may `action` ("read"/"add") the record, by the document's rules."""
    person = world.people[principal_id]
    record = world.records[record_id]
    if not person.active:
        return _no("not active")
    if person.device_revoked:
        return _no("device revoked")
    if record.category not in KNOWN_CATEGORIES:
        return _no("unknown category")
    if not record.child_ids:
        return _no("belongs to no child")
    if action == "add":
        if person.kind != "staff":
            return _no("only staff add records")
        # A new version must be wrapped for every child, shredded or not (a shredded child
        # has no key left, so it cannot be covered).
        for child_id in record.child_ids:
            if child_id in world.shredded:
                return _no(f"child {child_id} shredded")
            why = _staff_covers(world, person, record, child_id, now)
            if why is not None:
                return _no(f"child {child_id}: {why}")
        return Answer(True, "assignment", "assigned to every child", ("assignment",))
    counted = [c for c in record.child_ids if c not in world.shredded]
    if not counted:
        return _no("every child shredded")
    per_child: list[set[str]] = []
    for child_id in counted:
        if person.kind == "staff":
            why = _staff_covers(world, person, record, child_id, now)
            bases = {"assignment"} if why is None else set()
        elif person.kind == "guardian":
            why = _guardian_may_read(world, person.principal_id, record, child_id, now)
            bases = {"guardianship"} if why is None else set()
        else:
            bases = _outside_covers(world, person, record, child_id, now)
            why = "no share, basis or coverage"
        if not bases:
            return _no(f"child {child_id}: {why}")
        per_child.append(bases)
    # Children covered by different rules: the court order is the recorded basis. A child
    # covered on two bases may have been released on either.
    acceptable = {"court_order" if "court_order" in pick else pick[0] for pick in _picks(per_child)}
    basis = "court_order" if "court_order" in acceptable else min(acceptable)
    return Answer(True, basis, "covered", tuple(sorted(acceptable)))


def _picks(per_child: list[set[str]]) -> list[list[str]]:
    """Every way of choosing one basis per child."""
    picks: list[list[str]] = [[]]
    for bases in per_child:
        picks = [[*pick, basis] for pick in picks for basis in sorted(bases)]
    return picks
