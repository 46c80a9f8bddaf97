"""Enrolment, the caller's identity, principals and devices (docs/API.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import Connection, insert, select, update

from keyservice.api.changes import propose, refusals
from keyservice.api.encoding import b64decode
from keyservice.api.proposal_models import DevicePublic, NotificationPublic, ProposalPublic
from keyservice.api.schemas import (
    EnrolmentCode,
    EnrolRequest,
    EnrolResponse,
    Id,
    Me,
    PrincipalCreate,
    PrincipalCreated,
)
from keyservice.audit.chain import AuditEvent
from keyservice.audit.record import append_event, audit, refuse
from keyservice.catalog import proposals
from keyservice.catalog.changes import refuse_self_grant
from keyservice.catalog.grants import add_principal, kind_of
from keyservice.catalog.people import code_waiting_from_another, has_devices, has_read_rights
from keyservice.catalog.proposals import notify
from keyservice.db.tables import devices, enrolment_codes, notifications, principals
from keyservice.deps import AdminCaller, CurrentCaller, Db, State
from keyservice.enrolment import code_hash, issue_code
from keyservice.ids import new_id
from keyservice.policy.writes import Change, ProposalAction

router = APIRouter()

ENROL_FAILED = "the enrolment code is not valid; ask an administrator for a new one"


@dataclass(frozen=True)
class _Provenance:
    """Where a new device comes from (devices.origin, vouched_by, approved_by)."""

    origin: str
    vouched_by: str | None
    approved_by: str | None


def _provenance(db: Connection, code: Any, *, now: datetime) -> _Provenance | None:
    """The provenance a code gives its device; None if the code may no longer be used: added
    from a device revoked since (a stolen device must not keep adding others), or a first
    code an admin issued alone to someone who has since got a device or read rights."""
    if code.purpose == "added":
        parent = db.execute(
            select(devices.c.vouched_by).where(
                devices.c.device_id == code.issued_device,
                devices.c.principal_id == code.principal_id,
                devices.c.revoked_at.is_(None),
            )
        ).first()
        if parent is None:
            return None
        return _Provenance("added", parent.vouched_by, None)
    # A first code an admin issued alone, because the person had no device and nothing to
    # read: if either changed since, it is stale, or it would open an account someone was
    # given rights for while the admin still held its code.
    stale = code.purpose == "first" and code.issued_by is not None
    if stale and (
        has_devices(db, code.principal_id) or has_read_rights(db, code.principal_id, now=now)
    ):
        return None
    approved = code.issued_by if code.purpose in ("approved", "recovered") else None
    origin = "recovered" if code.purpose == "recovered" else "first"
    return _Provenance(origin, code.issued_by, approved)


@router.post("/v1/enrol", response_model=EnrolResponse)
def enrol(body: EnrolRequest, db: Db, state: State) -> EnrolResponse:
    """Register a device's public keys with a one-time code (the only unsigned write)."""
    now = state.clock()
    row = db.execute(
        select(
            enrolment_codes.c.code_hash,
            enrolment_codes.c.expires_at,
            enrolment_codes.c.used_at,
            enrolment_codes.c.issued_by,
            enrolment_codes.c.issued_device,
            enrolment_codes.c.purpose,
            principals.c.principal_id,
            principals.c.kind,
            principals.c.display_name,
            principals.c.roles,
            principals.c.revoked_at,
        )
        .join(principals, principals.c.principal_id == enrolment_codes.c.principal_id)
        .where(enrolment_codes.c.code_hash == code_hash(body.code))
    ).first()
    reason = None
    provenance: _Provenance | None = None
    if row is None:
        reason = "unknown_code"
    elif row.used_at is not None:
        reason = "used_code"
    elif row.expires_at <= now:
        reason = "expired_code"
    elif row.revoked_at is not None:
        reason = "revoked_principal"
    else:
        provenance = _provenance(db, row, now=now)
        if provenance is None:
            reason = "stale_code"
    if reason is not None or row is None or provenance is None:
        db.rollback()
        detail: dict[str, Any] = {"reason": reason}
        if row is not None:
            # Whoever holds the code has not shown they are its principal: not the actor.
            detail["code_principal"] = row.principal_id
        # Counted per source: past the first few per reason only counted, and audited with
        # the count when the source's window ends (decision 0011).
        admitted = state.rejections.admit(
            AuditEvent(action="device.enrol", outcome="deny", detail=detail)
        )
        if admitted is not None:
            append_event(db, state, admitted)
            db.commit()
        raise HTTPException(status_code=400, detail=ENROL_FAILED)
    # Mark the code used first and check that this transaction is the one that did it.
    marked = db.execute(
        update(enrolment_codes)
        .where(enrolment_codes.c.code_hash == row.code_hash, enrolment_codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    if marked.rowcount != 1:
        db.rollback()
        raise HTTPException(status_code=400, detail=ENROL_FAILED)
    device_id = new_id()
    db.execute(
        insert(devices).values(
            device_id=device_id,
            principal_id=row.principal_id,
            name=body.device_name,
            signing_key=b64decode(body.signing_key),
            receiving_key=b64decode(body.receiving_key),
            created_at=now,
            origin=provenance.origin,
            vouched_by=provenance.vouched_by,
            approved_by=provenance.approved_by,
        )
    )
    if provenance.origin == "recovered":
        notify(
            db,
            principal_id=row.principal_id,
            kind="device.recovered",
            detail={"device_id": device_id, "approved_by": provenance.approved_by},
            now=now,
        )
    append_event(
        db,
        state,
        AuditEvent(
            action="device.enrol",
            outcome="allow",
            actor_principal=row.principal_id,
            actor_device=device_id,
            detail={
                "principal_id": row.principal_id,
                "device_id": device_id,
                "origin": provenance.origin,
                "vouched_by": provenance.vouched_by,
                "approved_by": provenance.approved_by,
                "added_from": row.issued_device if provenance.origin == "added" else None,
            },
        ),
    )
    db.commit()
    return EnrolResponse(
        principal_id=row.principal_id,
        device_id=device_id,
        kind=row.kind,
        display_name=row.display_name,
        roles=row.roles.split(),
        audience=state.settings.audience,
    )


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
    roles = sorted(set(body.roles))
    if "admin" in roles:
        if body.kind != "staff":
            raise HTTPException(status_code=422, detail="only staff principals have roles")
        response.status_code = 202
        return propose(
            db,
            state,
            caller,
            action=ProposalAction.ADMIN_CREATE,
            payload=body.model_dump(mode="json"),
            child_id=None,
            beneficiary_id=None,
        )
    principal_id = add_principal(
        db,
        kind=body.kind,
        display_name=body.display_name,
        roles=roles,
        organisation=body.organisation,
        now=state.clock(),
    )
    audit(
        db,
        state,
        caller,
        "principal.create",
        {"principal_id": principal_id, "kind": body.kind, "roles": roles},
    )
    db.commit()
    return PrincipalCreated(principal_id=principal_id)


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
        refuse_self_grant(caller, Change.ENROLMENT_CODE, subject_id=principal_id)
    if (
        has_devices(db, principal_id)
        or has_read_rights(db, principal_id, now=now)
        or proposals.waiting_for(db, principal_id, now=now)
    ):
        response.status_code = 202
        return propose(
            db,
            state,
            caller,
            action=ProposalAction.DEVICE_ENROL,
            payload={"principal_id": principal_id},
            child_id=None,
            beneficiary_id=principal_id,
        )
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
    rows = db.execute(
        select(devices)
        .where(devices.c.principal_id == caller.principal_id)
        .order_by(devices.c.created_at.desc())
    ).all()
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
    rows = db.execute(
        select(notifications)
        .where(notifications.c.principal_id == caller.principal_id)
        .order_by(notifications.c.at.desc())
        .limit(200)
    ).all()
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
    now = state.clock()
    done = db.execute(
        update(principals)
        .where(principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if done.rowcount != 1:
        raise HTTPException(status_code=404, detail="no active principal with this id")
    db.execute(
        update(devices)
        .where(devices.c.principal_id == principal_id, devices.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    audit(db, state, caller, "principal.revoke", {"principal_id": principal_id})
    db.commit()


@router.post("/v1/admin/devices/{device_id}/revoke", status_code=204)
def revoke_device(device_id: Id, caller: CurrentCaller, db: Db, state: State) -> None:
    owner = db.execute(
        select(devices.c.principal_id).where(
            devices.c.device_id == device_id, devices.c.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    if owner is None or (owner != caller.principal_id and not caller.has_role("admin")):
        refuse(
            db,
            state,
            caller,
            "device.revoke",
            {"device_id": device_id},
            status=404,
            message="no active device with this id that you may revoke",
        )
    db.execute(
        update(devices).where(devices.c.device_id == device_id).values(revoked_at=state.clock())
    )
    audit(db, state, caller, "device.revoke", {"device_id": device_id, "principal_id": owner})
    db.commit()
