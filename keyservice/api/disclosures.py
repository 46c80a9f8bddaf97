"""The per-child disclosure log (606 CMR 7.04(12)(d)): who was given which record, when, on
what basis, and sealed to which device (a recovered device is marked). A view over the
release entries of the audit chain, read from the ``disclosures`` rows written in the same
transaction as each release's audit entry.

Who reads it:

- a guardian with parental responsibility for the child, who sees a row only if the policy
  would let them read that record now (so no safeguarding or withheld records, nor
  categories a court order restricts for them: the log must not tell them such records
  exist);
- a manager or DSL with a current assignment to the child in that role, who sees every row.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import Connection, or_, select

from keyservice.api.schemas import Disclosure, Id
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog.facts import decide_row_reads
from keyservice.db.tables import (
    assignments,
    audit_entries,
    devices,
    disclosures,
    guardianships,
    record_children,
    records,
)
from keyservice.deps import CurrentCaller, Db, State

router = APIRouter()

LOG_ROLES = ("manager", "dsl")


def _is_responsible_guardian(db: Connection, caller: Caller, child_id: str) -> bool:
    if caller.kind != "guardian":
        return False
    found = db.execute(
        select(guardianships.c.guardianship_id).where(
            guardianships.c.guardian_id == caller.principal_id,
            guardianships.c.child_id == child_id,
            guardianships.c.parental_responsibility.is_(True),
            guardianships.c.ended_at.is_(None),
        )
    ).first()
    return found is not None


def _is_assigned_manager_or_dsl(
    db: Connection, caller: Caller, child_id: str, now: datetime
) -> bool:
    """A current assignment to the child as manager or DSL, in a role the caller still holds."""
    if not caller.has_role(*LOG_ROLES):
        return False
    roles = db.execute(
        select(assignments.c.role).where(
            assignments.c.staff_id == caller.principal_id,
            assignments.c.child_id == child_id,
            assignments.c.valid_from <= now,
            or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
        )
    ).scalars()
    return any(role in LOG_ROLES and role in caller.roles for role in roles)


def _readable_by(db: Connection, caller: Caller, record_ids: set[str], now: datetime) -> set[str]:
    """The records among ``record_ids`` the policy lets ``caller`` read now."""
    if not record_ids:
        return set()
    attributes = {
        row.record_id: row
        for row in db.execute(
            select(
                records.c.record_id, records.c.category, records.c.withheld_from_guardians
            ).where(records.c.record_id.in_(record_ids))
        )
    }
    children: dict[str, list[str]] = {}
    for record_id, child_id in db.execute(
        select(record_children.c.record_id, record_children.c.child_id)
        .where(record_children.c.record_id.in_(record_ids))
        .order_by(record_children.c.record_id, record_children.c.child_id)
    ):
        children.setdefault(record_id, []).append(child_id)
    decisions = decide_row_reads(db, caller, attributes.values(), children, now=now)
    return {record_id for record_id, decision in decisions.items() if decision.allowed}


@router.get("/v1/children/{child_id}/disclosures", response_model=list[Disclosure])
def child_disclosures(
    child_id: Id, caller: CurrentCaller, db: Db, state: State
) -> list[Disclosure]:
    now = state.clock()
    guardian = _is_responsible_guardian(db, caller, child_id)
    if not (guardian or _is_assigned_manager_or_dsl(db, caller, child_id, now)):
        refuse(
            db,
            state,
            caller,
            "disclosures.read",
            {"child_id": child_id},
            status=403,
            message="only the child's guardians with parental responsibility, and managers "
            "and DSLs assigned to the child as such, read this log",
        )
    rows = db.execute(
        select(disclosures, audit_entries.c.actor_device, devices.c.origin)
        .outerjoin(audit_entries, audit_entries.c.seq == disclosures.c.audit_seq)
        .outerjoin(devices, devices.c.device_id == audit_entries.c.actor_device)
        .where(disclosures.c.child_id == child_id)
        .order_by(disclosures.c.audit_seq, disclosures.c.record_id, disclosures.c.version)
    ).all()
    if guardian:
        readable = _readable_by(db, caller, {row.record_id for row in rows}, now)
        rows = [row for row in rows if row.record_id in readable]
    audit(db, state, caller, "disclosures.read", {"child_id": child_id, "count": len(rows)})
    db.commit()
    return [
        Disclosure(
            record_id=row.record_id,
            version=row.version,
            principal_id=row.principal_id,
            basis=row.basis,
            at=row.at,
            audit_seq=row.audit_seq,
            device_id=row.actor_device,
            device_origin=row.origin,
        )
        for row in rows
    ]
