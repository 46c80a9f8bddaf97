"""Enrolment, the caller's identity, principals and devices (docs/API.md)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import insert, select, update

from keyservice.api.encoding import b64decode
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
from keyservice.db.tables import devices, enrolment_codes, principals
from keyservice.deps import AdminCaller, CurrentCaller, Db, State
from keyservice.enrolment import code_hash, issue_code
from keyservice.ids import new_id

router = APIRouter()

ENROL_FAILED = "the enrolment code is not valid; ask an administrator for a new one"


@router.post("/v1/enrol", response_model=EnrolResponse)
def enrol(body: EnrolRequest, db: Db, state: State) -> EnrolResponse:
    """Register a device's public keys with a one-time code (the only unsigned write)."""
    now = state.clock()
    row = db.execute(
        select(
            enrolment_codes.c.code_hash,
            enrolment_codes.c.expires_at,
            enrolment_codes.c.used_at,
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
    if row is None:
        reason = "unknown_code"
    elif row.used_at is not None:
        reason = "used_code"
    elif row.expires_at <= now:
        reason = "expired_code"
    elif row.revoked_at is not None:
        reason = "revoked_principal"
    if reason is not None or row is None:
        db.rollback()
        append_event(
            db,
            state,
            AuditEvent(
                action="device.enrol",
                outcome="deny",
                actor_principal=row.principal_id if row is not None else None,
                detail={"reason": reason},
            ),
        )
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
        )
    )
    append_event(
        db,
        state,
        AuditEvent(
            action="device.enrol",
            outcome="allow",
            actor_principal=row.principal_id,
            actor_device=device_id,
            detail={"principal_id": row.principal_id, "device_id": device_id},
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


@router.post("/v1/admin/principals", response_model=PrincipalCreated, status_code=201)
def create_principal(
    body: PrincipalCreate, caller: AdminCaller, db: Db, state: State
) -> PrincipalCreated:
    if body.kind != "staff" and body.roles:
        raise HTTPException(status_code=422, detail="only staff principals have roles")
    if body.kind == "staff" and not body.roles:
        raise HTTPException(status_code=422, detail="a staff principal needs at least one role")
    if body.kind == "external" and not body.organisation:
        raise HTTPException(status_code=422, detail="an external recipient needs an organisation")
    principal_id = new_id()
    db.execute(
        insert(principals).values(
            principal_id=principal_id,
            kind=body.kind,
            display_name=body.display_name,
            roles=" ".join(sorted(set(body.roles))),
            organisation=body.organisation,
            created_at=state.clock(),
        )
    )
    audit(
        db,
        state,
        caller,
        "principal.create",
        {"principal_id": principal_id, "kind": body.kind, "roles": sorted(set(body.roles))},
    )
    db.commit()
    return PrincipalCreated(principal_id=principal_id)


def _principal_exists(db: Db, principal_id: str) -> bool:
    found = db.execute(
        select(principals.c.principal_id).where(
            principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None)
        )
    ).first()
    return found is not None


@router.post(
    "/v1/admin/principals/{principal_id}/enrolment-codes",
    response_model=EnrolmentCode,
    status_code=201,
)
def create_enrolment_code(
    principal_id: Id, caller: AdminCaller, db: Db, state: State
) -> EnrolmentCode:
    if not _principal_exists(db, principal_id):
        raise HTTPException(status_code=404, detail="no active principal with this id")
    code, expires_at = issue_code(db, principal_id=principal_id, now=state.clock())
    audit(db, state, caller, "enrolment_code.issue", {"principal_id": principal_id})
    db.commit()
    return EnrolmentCode(code=code, expires_at=expires_at)


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
