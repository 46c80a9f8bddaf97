"""Enrolment: a device registers its public keys with a one-time code, the only unsigned
write (docs/API.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from keyservice.api.encoding import b64decode
from keyservice.api.schemas import EnrolRequest, EnrolResponse
from keyservice.audit.chain import AuditEvent
from keyservice.audit.record import append_event
from keyservice.catalog.proposals import notify
from keyservice.deps import Db, State
from keyservice.enrolment import EnrolmentRefused, enrol_device

router = APIRouter()

ENROL_FAILED = "the enrolment code is not valid; ask an administrator for a new one"


@router.post("/v1/enrol", response_model=EnrolResponse)
def enrol(body: EnrolRequest, db: Db, state: State) -> EnrolResponse:
    """Register a device's public keys with a one-time code (the only unsigned write)."""
    now = state.clock()
    try:
        device = enrol_device(
            db,
            code=body.code,
            device_name=body.device_name,
            signing_key=b64decode(body.signing_key),
            receiving_key=b64decode(body.receiving_key),
            now=now,
        )
    except EnrolmentRefused as refused:
        db.rollback()
        if refused.audited:
            detail: dict[str, Any] = {"reason": refused.reason}
            if refused.code_principal is not None:
                # Whoever holds the code has not shown they are its principal: not the actor.
                detail["code_principal"] = refused.code_principal
            # Counted per source: past the first few per reason only counted, and audited
            # with the count when the source's window ends (decision 0011).
            admitted = state.rejections.admit(
                AuditEvent(action="device.enrol", outcome="deny", detail=detail)
            )
            if admitted is not None:
                append_event(db, state, admitted)
                db.commit()
        raise HTTPException(status_code=400, detail=ENROL_FAILED) from None
    if device.origin == "recovered":
        notify(
            db,
            principal_id=device.principal_id,
            kind="device.recovered",
            detail={"device_id": device.device_id, "approved_by": device.approved_by},
            now=now,
        )
    append_event(
        db,
        state,
        AuditEvent(
            action="device.enrol",
            outcome="allow",
            actor_principal=device.principal_id,
            actor_device=device.device_id,
            detail={
                "principal_id": device.principal_id,
                "device_id": device.device_id,
                "origin": device.origin,
                "vouched_by": device.vouched_by,
                "approved_by": device.approved_by,
                "added_from": device.added_from,
                "share_id": device.share_id,
            },
        ),
    )
    db.commit()
    return EnrolResponse(
        principal_id=device.principal_id,
        device_id=device.device_id,
        kind=device.kind,
        display_name=device.display_name,
        roles=device.roles,
        audience=state.settings.audience,
    )
