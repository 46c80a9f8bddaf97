"""Loading the policy's facts from the database, for one record or a whole batch at once.

A batch costs at most three relationship queries whatever its size, because the policy judges
each kind of principal by one rule (keyservice/policy/decide.py) and only that rule's facts
are loaded: staff by their assignments; guardians by their guardianships and the court
orders about the children; outside recipients by the consents and court orders about the
children and their shares of the records asked about (keyservice/catalog/shares.py; never
loaded for staff or guardians, so their releases pay nothing for shares), plus the live
guardianships of each consent's
giver, because a consent reaches only what its giver could read (rules.py judges the giver
by the guardianship rule, restricting court orders included). Facts another rule would read
are left out, which the policy treats as absent; a new rule for a kind must add its facts
here. Whatever the kind, the children among them whose shred was carried out are loaded too
(``shredded_children``): the policy no longer counts them when a record is read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, and_, bindparam, select, union_all

from keyservice.caller import Caller
from keyservice.catalog.share_facts import RecipientShares, shares_of_recipient
from keyservice.catalog.shredding import DONE
from keyservice.db.tables import (
    assignments,
    consents,
    court_orders,
    guardianships,
    room_children,
    room_staff,
    shred_requests,
)
from keyservice.policy import (
    Action,
    Assignment,
    Consent,
    CourtOrder,
    Decision,
    Facts,
    Guardianship,
    PrincipalFacts,
    PrincipalKind,
    RecordFacts,
    Share,
    decide,
)

# Built once: constructing a statement and its cache key cost more than running it.
_CHILD_IDS: BindParameter[list[str]] = bindparam("child_ids", expanding=True)
# A member of staff's assignments to the children, and beside them, in the same query, what
# their rooms give them: each of their room memberships beside each membership of one of the
# children in that room (docs/decisions/0018-rooms-and-imports.md). A direct assignment's
# second window is its own; a room's is the child's membership, and the two overlap.
_ASSIGNMENTS = union_all(
    select(
        assignments.c.assignment_id,
        assignments.c.staff_id,
        assignments.c.child_id,
        assignments.c.role,
        assignments.c.valid_from,
        assignments.c.valid_to,
        assignments.c.valid_from.label("child_from"),
        assignments.c.valid_to.label("child_to"),
    ).where(
        assignments.c.staff_id == bindparam("principal_id"),
        assignments.c.child_id.in_(_CHILD_IDS),
    ),
    select(
        room_staff.c.membership_id,
        room_staff.c.staff_id,
        room_children.c.child_id,
        room_staff.c.role,
        room_staff.c.valid_from,
        room_staff.c.valid_to,
        room_children.c.valid_from,
        room_children.c.valid_to,
    )
    .select_from(room_staff.join(room_children, room_children.c.room_id == room_staff.c.room_id))
    .where(
        room_staff.c.staff_id == bindparam("principal_id"),
        room_children.c.child_id.in_(_CHILD_IDS),
    ),
)
_GUARDIANSHIPS = select(guardianships).where(
    guardianships.c.guardian_id.in_(bindparam("guardian_ids", expanding=True)),
    guardianships.c.child_id.in_(_CHILD_IDS),
    guardianships.c.ended_at.is_(None),
)
# An outside recipient's consents about the children, each beside the live guardianships of
# its giver with those children if it names the recipient (a consent reaches only what its
# giver could read), in one query: a consent row repeats for each such guardianship.
_CONSENTS_AND_GIVERS = (
    select(
        consents,
        guardianships.c.guardianship_id,
        guardianships.c.guardian_id,
        guardianships.c.child_id.label("guardianship_child_id"),
        guardianships.c.parental_responsibility,
    )
    .select_from(
        consents.outerjoin(
            guardianships,
            and_(
                consents.c.recipient_id == bindparam("principal_id"),
                guardianships.c.guardian_id == consents.c.given_by,
                guardianships.c.child_id.in_(_CHILD_IDS),
                guardianships.c.ended_at.is_(None),
            ),
        )
    )
    .where(consents.c.child_id.in_(_CHILD_IDS))
)
_COURT_ORDERS = select(court_orders).where(court_orders.c.child_id.in_(_CHILD_IDS))
# Children shredded whole: a shred of a child (not of a record) carried out. One blocked when
# it fell due is cancelled in the same transaction, so "done" means carried out.
SHREDDED_CHILD_IDS = select(shred_requests.c.child_id).where(
    shred_requests.c.state == DONE, shred_requests.c.child_id.is_not(None)
)
_SHREDDED = SHREDDED_CHILD_IDS.where(shred_requests.c.child_id.in_(_CHILD_IDS))


@dataclass(frozen=True)
class Relationships:
    """Every relationship of one principal with, and about, a set of children."""

    assignments: tuple[Assignment, ...]
    guardianships: tuple[Guardianship, ...]
    consents: tuple[Consent, ...]
    court_orders: tuple[CourtOrder, ...]
    shares: tuple[Share, ...] = ()
    # An outside recipient's shares as loaded (the live versions and caps a release needs).
    recipient: RecipientShares | None = None
    # Those of the children whose shred was carried out (decision 0019).
    shredded: frozenset[str] = frozenset()


def load_relationships(
    connection: Connection,
    *,
    principal_id: str,
    kind: str,
    child_ids: Iterable[str],
    record_ids: Iterable[str] = (),
    now: datetime | None = None,
    shredded: Collection[str] | None = None,
) -> Relationships:
    """``record_ids`` and ``now``: for an outside recipient, load their shares of those
    records (without them, none are loaded and the rules deny every share). ``shredded``:
    the children shredded among them, if the caller read them already (a release does, with
    its records' children); loaded otherwise."""
    wanted = set(child_ids)
    if not wanted:
        return Relationships((), (), (), ())
    recipient = None
    if kind == "external" and now is not None:
        recipient = shares_of_recipient(connection, principal_id, record_ids, now=now)
    consents: tuple[Consent, ...] = ()
    if kind == "external":
        consents, givers = _consents_and_givers(connection, principal_id, wanted)
    else:
        givers = _guardianships(connection, {principal_id} if kind == "guardian" else set(), wanted)
    return Relationships(
        _assignments(connection, principal_id, wanted) if kind == "staff" else (),
        givers,
        consents,
        _court_orders(connection, wanted) if kind in ("guardian", "external") else (),
        recipient.shares if recipient is not None else (),
        recipient,
        shredded_children(connection, wanted) if shredded is None else frozenset(shredded),
    )


def shredded_children(connection: Connection, child_ids: Collection[str]) -> frozenset[str]:
    """Those of ``child_ids`` whose shred was carried out."""
    return frozenset(connection.execute(_SHREDDED, {"child_ids": list(child_ids)}).scalars())


def _assignments(
    connection: Connection, principal_id: str, wanted: set[str]
) -> tuple[Assignment, ...]:
    """Direct assignments, and room memberships as assignments for the overlap of the staff
    member's and the child's windows (none where they do not overlap)."""
    found: list[Assignment] = []
    for row in connection.execute(
        _ASSIGNMENTS, {"principal_id": principal_id, "child_ids": list(wanted)}
    ):
        start = max(row.valid_from, row.child_from)
        ends = [end for end in (row.valid_to, row.child_to) if end is not None]
        end = min(ends) if ends else None
        if end is not None and end <= start:
            continue
        found.append(
            Assignment(
                assignment_id=row.assignment_id,
                staff_id=row.staff_id,
                child_id=row.child_id,
                role=row.role,
                valid_from=start,
                valid_to=end,
            )
        )
    return tuple(found)


def _guardianships(
    connection: Connection, guardian_ids: set[str], wanted: set[str]
) -> tuple[Guardianship, ...]:
    if not guardian_ids:
        return ()
    return tuple(
        Guardianship(
            guardianship_id=row.guardianship_id,
            guardian_id=row.guardian_id,
            child_id=row.child_id,
            parental_responsibility=row.parental_responsibility,
        )
        for row in connection.execute(
            _GUARDIANSHIPS, {"guardian_ids": list(guardian_ids), "child_ids": list(wanted)}
        )
    )


def _consents_and_givers(
    connection: Connection, principal_id: str, wanted: set[str]
) -> tuple[tuple[Consent, ...], tuple[Guardianship, ...]]:
    """The consents about the children, and the live guardianships with them of the givers
    of those that name ``principal_id``."""
    found: dict[str, Consent] = {}
    givers: dict[str, Guardianship] = {}
    for row in connection.execute(
        _CONSENTS_AND_GIVERS, {"principal_id": principal_id, "child_ids": list(wanted)}
    ):
        if row.consent_id not in found:
            found[row.consent_id] = Consent(
                consent_id=row.consent_id,
                child_id=row.child_id,
                given_by=row.given_by,
                recipient_id=row.recipient_id,
                categories=frozenset(row.categories.split()),
                purpose=row.purpose,
                valid_from=row.valid_from,
                valid_to=row.valid_to,
                withdrawn_at=row.withdrawn_at,
            )
        if row.guardianship_id is not None and row.guardianship_id not in givers:
            givers[row.guardianship_id] = Guardianship(
                guardianship_id=row.guardianship_id,
                guardian_id=row.guardian_id,
                child_id=row.guardianship_child_id,
                parental_responsibility=row.parental_responsibility,
            )
    return tuple(found.values()), tuple(givers.values())


def _court_orders(connection: Connection, wanted: set[str]) -> tuple[CourtOrder, ...]:
    return tuple(
        CourtOrder(
            court_order_id=row.court_order_id,
            child_id=row.child_id,
            effect=row.effect,
            subject_id=row.subject_id,
            categories=frozenset(row.categories.split()),
            reference=row.reference,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
        )
        for row in connection.execute(_COURT_ORDERS, {"child_ids": list(wanted)})
    )


def principal_facts(caller: Caller) -> PrincipalFacts:
    """The caller as the policy sees it; ``authenticate`` already refused revoked ones."""
    return PrincipalFacts(
        principal_id=caller.principal_id,
        kind=PrincipalKind(caller.kind),
        roles=caller.roles,
        active=True,
        device_active=True,
    )


def decide_for(
    caller: Caller,
    relationships: Relationships,
    *,
    action: Action,
    record: RecordFacts,
    now: datetime,
) -> Decision:
    """The policy's decision for ``caller`` on ``record``."""
    return decide(
        Facts(
            principal=principal_facts(caller),
            action=action,
            record=record,
            now=now,
            assignments=relationships.assignments,
            guardianships=relationships.guardianships,
            consents=relationships.consents,
            court_orders=relationships.court_orders,
            shares=relationships.shares,
            shredded=relationships.shredded,
        )
    )


def decide_reads(
    caller: Caller,
    relationships: Relationships,
    records: Iterable[RecordFacts],
    *,
    now: datetime,
) -> dict[str, Decision]:
    """The policy's READ decision for ``caller`` on each record, by record id.

    Staff and guardians are judged by a record's category, children and flag only, so
    records alike share one decision; outside recipients' shares name records one by one.
    """
    decided: dict[tuple[object, ...], Decision] = {}
    decisions: dict[str, Decision] = {}
    for record in records:
        alike: tuple[object, ...] = (
            record.category,
            record.child_ids,
            record.withheld_from_guardians,
        )
        if caller.kind == "external":
            alike = (record.record_id, *alike)
        decision = decided.get(alike)
        if decision is None:
            decision = decided[alike] = decide_for(
                caller, relationships, action=Action.READ, record=record, now=now
            )
        decisions[record.record_id] = decision
    return decisions


@dataclass(frozen=True)
class RowReads:
    """The READ decision on each record by id, and, for an outside recipient, their shares
    of those records as loaded to decide (a release counts and names them); the records'
    children shredded, which no longer count."""

    decisions: dict[str, Decision]
    recipient: RecipientShares | None
    shredded: frozenset[str] = frozenset()


def decide_row_reads(
    connection: Connection,
    caller: Caller,
    rows: Iterable[Any],
    children: Mapping[str, Sequence[str]],
    *,
    now: datetime,
) -> dict[str, Decision]:
    """``decide_reads`` for catalog rows (each with ``record_id``, ``category`` and
    ``withheld_from_guardians``) whose children are ``children[record_id]``: the caller's
    relationships with those children are loaded once for the whole batch."""
    return read_rows(connection, caller, rows, children, now=now).decisions


def read_rows(
    connection: Connection,
    caller: Caller,
    rows: Iterable[Any],
    children: Mapping[str, Sequence[str]],
    *,
    now: datetime,
    shredded: Collection[str] | None = None,
) -> RowReads:
    """``decide_row_reads``, with the outside recipient's shares it loaded. ``shredded``:
    the children shredded among ``children``, if already read (else loaded)."""
    shared: list[str] = []
    if caller.kind == "external":
        # Only outside recipients read shares: staff and guardians pay nothing for them.
        rows = list(rows)
        shared = [row.record_id for row in rows]
    relationships = load_relationships(
        connection,
        principal_id=caller.principal_id,
        kind=caller.kind,
        child_ids={c for cs in children.values() for c in cs},
        record_ids=shared,
        now=now,
        shredded=shredded,
    )
    if caller.kind == "external":
        decisions = decide_reads(
            caller,
            relationships,
            (
                RecordFacts(
                    record_id=row.record_id,
                    category=row.category,
                    child_ids=tuple(sorted(children.get(row.record_id, ()))),
                    withheld_from_guardians=row.withheld_from_guardians,
                )
                for row in rows
            ),
            now=now,
        )
        return RowReads(decisions, relationships.recipient, relationships.shredded)
    # Staff and guardians: as ``decide_reads``, records alike share one decision, but their
    # facts are built once per kind of record, not per record (a release of 1,000 records
    # of one child builds one).
    decided: dict[tuple[object, ...], Decision] = {}
    decisions = {}
    for row in rows:
        ids = children.get(row.record_id, ())
        alike = (row.category, row.withheld_from_guardians, *ids)
        decision = decided.get(alike)
        if decision is None:
            record = RecordFacts(
                record_id=row.record_id,
                category=row.category,
                child_ids=tuple(sorted(ids)),
                withheld_from_guardians=row.withheld_from_guardians,
            )
            decision = decided[alike] = decide_for(
                caller, relationships, action=Action.READ, record=record, now=now
            )
        decisions[row.record_id] = decision
    return RowReads(decisions, relationships.recipient, relationships.shredded)
