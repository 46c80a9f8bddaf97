"""People and their devices: admins add people, revoke them and issue first codes; everyone
sees who they are, lists and revokes their own devices, and reads their notifications
(docs/API.md)."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Response

from keyservice.api.changes import carry_out, proposed, refusals
from keyservice.api.offboard_models import OffboardPublic, OffboardRequest
from keyservice.api.proposal_models import DevicePublic, NotificationPublic, ProposalPublic
from keyservice.api.schemas import (
    EnrolmentCode,
    Id,
    Me,
    PrincipalCreate,
    PrincipalCreated,
)
from keyservice.audit.record import audit
from keyservice.catalog import changes, offboarding
from keyservice.catalog.grants import kind_of
from keyservice.catalog.people import code_waiting_from_another, devices_of, notifications_of
from keyservice.catalog.people import revoke_principal as revoke_principal_now
from keyservice.deps import AdminCaller, CurrentCaller, Db, State
from keyservice.enrolment import issue_code

router = APIRouter()


@router.get("/v1/me", response_model=Me)
def me(caller: CurrentCaller, db: Db) -> Me:
    db.commit()
    return Me(
        principal_id=caller.principal_id,
        device_id=caller.device_id,
        kind=caller.kind,
        display_name=caller.display_name,
        roles=sorted(caller.roles),
        organisation=caller.organisation,
    )


@router.post(
    "/v1/admin/principals",
    response_model=PrincipalCreated | ProposalPublic,
    status_code=201,
    responses={202: {"model": ProposalPublic, "description": "a new admin: waiting for approval"}},
)
def create_principal(
    body: PrincipalCreate, caller: AdminCaller, db: Db, state: State, response: Response
) -> PrincipalCreated | ProposalPublic:
    """Add a person. A new admin is a proposal: another admin (or, where there is only one,
    a manager or DSL) approves it and hands the new admin their first code."""
    outcome = changes.add_person(db, caller, body.model_dump(mode="json"), now=state.clock())
    done = carry_out(db, state, caller, outcome, response)
    if isinstance(done, ProposalPublic):
        return done
    assert done.result_id is not None
    return PrincipalCreated(principal_id=done.result_id)


@router.post(
    "/v1/admin/principals/{principal_id}/enrolment-codes",
    response_model=EnrolmentCode | ProposalPublic,
    status_code=201,
    responses={202: {"model": ProposalPublic, "description": "waiting for a second person"}},
)
def create_enrolment_code(
    principal_id: Id, caller: AdminCaller, db: Db, state: State, response: Response
) -> EnrolmentCode | ProposalPublic:
    """A first code for someone with no device and nothing to read yet, at once. For anyone
    else (a lost device, or rights already given) a proposal: a second person approves it
    and receives the code to hand over, and the person is told."""
    now = state.clock()
    if kind_of(db, principal_id) is None:
        raise HTTPException(status_code=404, detail="no active principal with this id")
    with refusals(db, state, caller):
        wanted = changes.code_needs_approval(db, caller, principal_id, now=now)
    if wanted is not None:
        return proposed(db, state, caller, wanted, response)
    if code_waiting_from_another(db, principal_id, besides=caller.principal_id, now=now):
        raise HTTPException(
            status_code=409,
            detail="someone else's enrolment code is already waiting for this person; "
            "they enrol with that one, or ask again once it has expired (24 hours)",
        )
    code, expires_at = issue_code(
        db,
        principal_id=principal_id,
        now=now,
        issued_by=caller.principal_id,
        issued_device=caller.device_id,
    )
    audit(db, state, caller, "enrolment_code.issue", {"principal_id": principal_id})
    db.commit()
    return EnrolmentCode(code=code, expires_at=expires_at)


@router.post("/v1/me/enrolment-codes", response_model=EnrolmentCode, status_code=201)
def add_device_code(caller: CurrentCaller, db: Db, state: State) -> EnrolmentCode:
    """A code to add another device of your own, from a device you already have."""
    code, expires_at = issue_code(
        db,
        principal_id=caller.principal_id,
        now=state.clock(),
        issued_by=caller.principal_id,
        issued_device=caller.device_id,
        purpose="added",
    )
    audit(db, state, caller, "enrolment_code.issue", {"principal_id": caller.principal_id})
    db.commit()
    return EnrolmentCode(code=code, expires_at=expires_at)


@router.get("/v1/me/devices", response_model=list[DevicePublic])
def my_devices(caller: CurrentCaller, db: Db) -> list[DevicePublic]:
    """Every device enrolled for you, revoked ones included, newest first."""
    rows = devices_of(db, caller.principal_id)
    db.commit()
    return [
        DevicePublic(
            device_id=row.device_id,
            name=row.name,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            origin=row.origin,
            approved_by=row.approved_by,
            current=row.device_id == caller.device_id,
        )
        for row in rows
    ]


@router.get("/v1/me/notifications", response_model=list[NotificationPublic])
def my_notifications(caller: CurrentCaller, db: Db) -> list[NotificationPublic]:
    rows = notifications_of(db, caller.principal_id)
    db.commit()
    return [
        NotificationPublic(
            notification_id=row.notification_id,
            at=row.at,
            kind=row.kind,
            detail=json.loads(row.detail),
        )
        for row in rows
    ]


@router.post("/v1/admin/principals/{principal_id}/revoke", status_code=204)
def revoke_principal(principal_id: Id, caller: AdminCaller, db: Db, state: State) -> None:
    if not revoke_principal_now(db, principal_id, now=state.clock()):
        raise HTTPException(status_code=404, detail="no active principal with this id")
    audit(db, state, caller, "principal.revoke", {"principal_id": principal_id})
    db.commit()


@router.post("/v1/admin/principals/{principal_id}/offboard", response_model=OffboardPublic)
def offboard(
    principal_id: Id, body: OffboardRequest, caller: AdminCaller, db: Db, state: State
) -> OffboardPublic:
    """A member of staff leaves: in one transaction every current and future assignment
    ends, every device and open enrolment code stops working, the person is revoked, and one
    audit entry lists what ended. Offboarding an admin, manager or DSL is announced to the
    others. ``dry_run`` says what would end and changes nothing."""
    now = state.clock()
    with refusals(db, state, caller):
        if body.dry_run:
            done = offboarding.plan(db, caller, principal_id, now=now)
        else:
            done = offboarding.offboard(db, caller, principal_id, reason=body.reason, now=now)
    if body.dry_run:
        db.rollback()
    else:
        audit(db, state, caller, offboarding.ACTION, {**done.detail(), "reason": body.reason})
        with refusals(db, state, caller):
            # After the chain-head lock: an admin offboarded at the same moment counts.
            offboarding.must_leave_an_admin(db, principal_id)
        db.commit()
    return OffboardPublic(
        principal_id=done.principal_id,
        dry_run=body.dry_run,
        roles=list(done.roles),
        assignments_ended=list(done.assignments_ended),
        devices_revoked=list(done.devices_revoked),
        codes_voided=done.codes_voided,
        proposals_cancelled=list(done.proposals_cancelled),
        shares_kept=done.shares_kept,
        announced_to=list(done.announced_to),
    )


@router.post("/v1/admin/devices/{device_id}/revoke", status_code=204)
def revoke_device(device_id: Id, caller: CurrentCaller, db: Db, state: State) -> None:
    with refusals(db, state, caller):
        made = changes.revoke_device(db, caller, device_id, now=state.clock())
    carry_out(db, state, caller, made, Response())
