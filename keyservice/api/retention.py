"""Retention, legal holds and crypto-shredding (issue 15, part 6; decision 0019): the retention
report for admins; holds, shred requests, approvals, cancellations and certificates for a
child's managers and DSLs. Shreds whose wait is over are carried out by the service's timer
(keyservice/shred_timer.py) and by any of these routes before it answers."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from keyservice.api.changes import refusals
from keyservice.api.encoding import b64encode
from keyservice.api.retention_models import (
    DuePublic,
    HoldLift,
    HoldPublic,
    HoldSet,
    ServiceKeyPublic,
    ShredCancel,
    ShredCertificatePublic,
    ShredPublic,
    ShredRequest,
)
from keyservice.api.schemas import Id
from keyservice.audit.record import audit
from keyservice.catalog import retention, shredding
from keyservice.deps import AdminCaller, CurrentCaller, Db, State
from keyservice.policy.retention import parse_rules
from keyservice.policy.writes import Change

router = APIRouter()


def _public(shred: shredding.Shred, plan: shredding.Plan | None = None) -> ShredPublic:
    return ShredPublic(
        shred_id=shred.shred_id,
        target=shred.target,
        record_id=shred.record_id,
        child_id=shred.child_id,
        child_ids=list(shred.child_ids),
        reason=shred.reason,
        state=shred.state,
        requested_by=shred.requested_by,
        requested_at=shred.requested_at,
        approved_by=shred.approved_by,
        approved_at=shred.approved_at,
        not_before=shred.not_before,
        cancelled_by=shred.cancelled_by,
        cancelled_at=shred.cancelled_at,
        cancel_reason=shred.cancel_reason,
        done_at=shred.done_at,
        records=plan.records if plan else None,
        versions=plan.versions if plan else None,
    )


@router.get("/v1/admin/retention/due", response_model=list[DuePublic])
def retention_due(caller: AdminCaller, db: Db, state: State) -> list[DuePublic]:
    """Records and children whose retention is over today, with the rule that made each due."""
    found = retention.due(db, parse_rules(state.settings.retention), today=state.clock().date())
    audit(db, state, caller, "retention.due", {"count": len(found)})
    db.commit()
    return [
        DuePublic(
            kind=item.kind,
            record_id=item.record_id,
            child_id=item.child_id,
            child_ids=list(item.child_ids),
            category=item.category,
            rule=item.rule,
            due_on=item.due_on,
            on_hold=item.on_hold,
            shred_open=item.shred_open,
        )
        for item in found
    ]


@router.post("/v1/children/{child_id}/holds", response_model=HoldPublic, status_code=201)
def set_hold(
    child_id: Id, body: HoldSet, caller: CurrentCaller, db: Db, state: State
) -> HoldPublic:
    """A legal hold: nothing of the child is shredded while it is on."""
    with refusals(db, state, caller):
        hold_id = shredding.set_hold(db, caller, child_id, reason=body.reason, now=state.clock())
    audit(
        db,
        state,
        caller,
        Change.LEGAL_HOLD_SET.value,
        {"hold_id": hold_id, "child_id": child_id, "reason": body.reason},
    )
    db.commit()
    return HoldPublic(hold_id=hold_id, child_id=child_id, state="on")


@router.post("/v1/holds/{hold_id}/lift", response_model=HoldPublic)
def lift_hold(
    hold_id: Id, body: HoldLift, caller: CurrentCaller, db: Db, state: State
) -> HoldPublic:
    with refusals(db, state, caller):
        child_id = shredding.lift_hold(db, caller, hold_id, reason=body.reason, now=state.clock())
    audit(
        db,
        state,
        caller,
        Change.LEGAL_HOLD_LIFT.value,
        {"hold_id": hold_id, "child_id": child_id, "reason": body.reason},
    )
    db.commit()
    return HoldPublic(hold_id=hold_id, child_id=child_id, state="lifted")


@router.post("/v1/shreds", response_model=ShredPublic, status_code=201)
def request_shred(body: ShredRequest, caller: CurrentCaller, db: Db, state: State) -> ShredPublic:
    """Ask for a record or a whole child to be shredded; a second manager or DSL approves."""
    shredding.run_due(state.engine, state)
    with refusals(db, state, caller):
        shred, plan = shredding.request(
            db,
            caller,
            record_id=body.record_id,
            child_id=body.child_id,
            reason=body.reason,
            now=state.clock(),
        )
    answer = _public(shred, plan)
    if body.dry_run:
        db.rollback()
        return answer.model_copy(update={"shred_id": None, "state": "dry-run"})
    audit(
        db,
        state,
        caller,
        Change.SHRED_REQUEST.value,
        {**shred.detail(), "reason": body.reason, "records": plan.records},
    )
    db.commit()
    return answer


@router.get("/v1/shreds", response_model=list[ShredPublic])
def list_shreds(caller: CurrentCaller, db: Db, state: State) -> list[ShredPublic]:
    shredding.run_due(state.engine, state)
    found = shredding.visible_to(db, caller, now=state.clock())
    db.commit()
    return [_public(shred) for shred in found]


@router.get("/v1/shreds/{shred_id}", response_model=ShredPublic)
def show_shred(shred_id: Id, caller: CurrentCaller, db: Db, state: State) -> ShredPublic:
    shredding.run_due(state.engine, state)
    with refusals(db, state, caller):
        found = shredding.show(db, caller, shred_id, now=state.clock())
    db.commit()
    return _public(found)


@router.post("/v1/shreds/{shred_id}/approve", response_model=ShredPublic)
def approve_shred(shred_id: Id, caller: CurrentCaller, db: Db, state: State) -> ShredPublic:
    """The second person: the wait (CAREVAULT_SHRED_WAIT_DAYS) starts now."""
    wait = timedelta(days=state.settings.shred_wait_days)
    with refusals(db, state, caller):
        approved = shredding.approve(db, caller, shred_id, wait=wait, now=state.clock())
    audit(
        db,
        state,
        caller,
        Change.SHRED_APPROVE.value,
        {**approved.detail(), "not_before": str(approved.not_before)},
    )
    db.commit()
    shredding.run_due(state.engine, state)
    return _public(shredding.load(db, shred_id) or approved)


@router.post("/v1/shreds/{shred_id}/cancel", response_model=ShredPublic)
def cancel_shred(
    shred_id: Id, body: ShredCancel, caller: CurrentCaller, db: Db, state: State
) -> ShredPublic:
    shredding.run_due(state.engine, state)
    with refusals(db, state, caller):
        cancelled = shredding.cancel(db, caller, shred_id, reason=body.reason, now=state.clock())
    audit(
        db,
        state,
        caller,
        Change.SHRED_CANCEL.value,
        {**cancelled.detail(), "reason": body.reason},
    )
    db.commit()
    return _public(cancelled)


@router.get("/v1/shreds/{shred_id}/certificate", response_model=ShredCertificatePublic)
def shred_certificate(
    shred_id: Id, caller: CurrentCaller, db: Db, state: State
) -> ShredCertificatePublic:
    shredding.run_due(state.engine, state)
    with refusals(db, state, caller):
        certificate = shredding.certificate_of(db, caller, shred_id, now=state.clock())
    db.commit()
    return ShredCertificatePublic(
        shred_id=shred_id,
        statement=b64encode(certificate.statement),
        signature=b64encode(certificate.signature),
        service_key=shredding.service_public_key(state),
    )


@router.get("/v1/service/signing-key", response_model=ServiceKeyPublic)
def service_signing_key(caller: CurrentCaller, db: Db, state: State) -> ServiceKeyPublic:
    """The key that signs audit checkpoints and shred certificates: pin it, off the service."""
    db.commit()
    return ServiceKeyPublic(public_key=shredding.service_public_key(state))
