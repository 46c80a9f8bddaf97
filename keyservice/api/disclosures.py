"""The per-child disclosure log (606 CMR 7.04(12)(d)): who was given which record, when, and
on what basis. A view over the release entries of the audit chain, read from the
``disclosures`` rows written in the same transaction as each release's audit entry.
Guardians see the entries of records they could read themselves; managers and DSLs see all."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from keyservice.api.schemas import Disclosure, Id
from keyservice.audit.record import audit, refuse
from keyservice.db.tables import disclosures, guardianships, records
from keyservice.deps import CurrentCaller, Db, State
from vault.format import Category

router = APIRouter()


@router.get("/v1/children/{child_id}/disclosures", response_model=list[Disclosure])
def child_disclosures(
    child_id: Id, caller: CurrentCaller, db: Db, state: State
) -> list[Disclosure]:
    is_guardian = (
        db.execute(
            select(guardianships.c.guardianship_id).where(
                guardianships.c.guardian_id == caller.principal_id,
                guardianships.c.child_id == child_id,
                guardianships.c.ended_at.is_(None),
            )
        ).first()
        is not None
    )
    if not (is_guardian or caller.has_role("manager", "dsl")):
        refuse(
            db,
            state,
            caller,
            "disclosures.read",
            {"child_id": child_id},
            status=403,
            message="only the child's guardians, managers and DSLs read this log",
        )
    query = (
        select(disclosures)
        .where(disclosures.c.child_id == child_id)
        .order_by(disclosures.c.audit_seq, disclosures.c.record_id, disclosures.c.version)
    )
    if not caller.has_role("manager", "dsl"):
        # A guardian must not learn from the log that safeguarding or withheld records exist:
        # that alone could put the child at risk. Those entries stay visible to managers/DSLs.
        query = query.join(records, records.c.record_id == disclosures.c.record_id).where(
            records.c.category != Category.SAFEGUARDING.value,
            records.c.withheld_from_guardians.is_(False),
        )
    rows = db.execute(query).all()
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
        )
        for row in rows
    ]
