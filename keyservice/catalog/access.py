"""A stored record as the policy sees it, and whether a caller may add to it or read it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from keyservice.caller import Caller
from keyservice.catalog.child_keys import active_versions
from keyservice.catalog.facts import decide_for, load_relationships
from keyservice.db.tables import record_children, records
from keyservice.policy import Action, RecordFacts

# Every refusal about a stored record starts so, whether it is missing or forbidden.
UNAVAILABLE = "no such record, or not one you may use"


def stored_facts(db: Connection, record_id: str) -> RecordFacts | None:
    """The policy's view of a live (not deleted) record, or None."""
    row = db.execute(
        select(records.c.category, records.c.withheld_from_guardians).where(
            records.c.record_id == record_id, records.c.deleted_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    child_ids = db.execute(
        select(record_children.c.child_id)
        .where(record_children.c.record_id == record_id)
        .order_by(record_children.c.child_id)
    ).scalars()
    return RecordFacts(
        record_id=record_id,
        category=row.category,
        child_ids=tuple(child_ids),
        withheld_from_guardians=row.withheld_from_guardians,
    )


def may_create(
    db: Connection, caller: Caller, record: RecordFacts, *, now: datetime
) -> tuple[bool, str]:
    """Policy CREATE for every child of ``record``, whose children all have a key; and the
    decision's basis. Unknown children are denied like forbidden ones."""
    relationships = load_relationships(
        db, principal_id=caller.principal_id, kind=caller.kind, child_ids=record.child_ids
    )
    decision = decide_for(caller, relationships, action=Action.CREATE, record=record, now=now)
    allowed = decision.allowed and len(active_versions(db, record.child_ids)) == len(
        record.child_ids
    )
    return allowed, decision.basis.value


def may_read(db: Connection, caller: Caller, record: RecordFacts, *, now: datetime) -> bool:
    relationships = load_relationships(
        db,
        principal_id=caller.principal_id,
        kind=caller.kind,
        child_ids=record.child_ids,
        record_ids=(record.record_id,),
        now=now,
    )
    return decide_for(caller, relationships, action=Action.READ, record=record, now=now).allowed
