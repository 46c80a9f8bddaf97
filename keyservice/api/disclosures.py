"""The per-child disclosure log (606 CMR 7.04(12)(d)): who was given which record, when, on
what basis, and sealed to which device (a recovered device is marked). A view over the
release entries of the audit chain, read from the ``disclosures`` rows written in the same
transaction as each release's audit entry.

Who reads it:

- a guardian with parental responsibility for the child, who sees a row only if the policy
  would let them read that record now (so no safeguarding or withheld records, nor
  categories a court order restricts for them: the log must not tell them such records
  exist), and not the rows of a share under a court order that says they are not told;
- a manager or DSL with a current assignment to the child in that role, who sees every row.
"""

from __future__ import annotations

from fastapi import APIRouter

from keyservice.api.record_models import Disclosure
from keyservice.api.schemas import Id
from keyservice.audit.record import audit, refuse
from keyservice.catalog import disclosure_log
from keyservice.catalog.changes import judge
from keyservice.deps import CurrentCaller, Db, State
from keyservice.policy.writes import Change

router = APIRouter()


@router.get("/v1/children/{child_id}/disclosures", response_model=list[Disclosure])
def child_disclosures(
    child_id: Id, caller: CurrentCaller, db: Db, state: State
) -> list[Disclosure]:
    now = state.clock()
    if not judge(db, caller, Change.DISCLOSURES_READ, child_id=child_id, now=now).allowed:
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
    rows = disclosure_log.entries_for(db, child_id)
    if caller.kind == "guardian":
        # A guardian sees only what they may read now: the log must not tell them of others.
        rows = [row for row in rows if disclosure_log.told_to_guardians(row)]
        readable = disclosure_log.readable_by(db, caller, {row.record_id for row in rows}, now)
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
            decision="shared" if row.action == "share.create" else "granted",
            share_id=row.share_id,
            organisation=row.organisation,
            purpose=row.purpose,
        )
        for row in rows
    ]
