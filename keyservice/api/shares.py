"""Shares to outside recipients (issue 14): made by the child's manager or DSL on a consent or
a disclosing court order, seen by their creator and their recipient, revoked with a reason.
Releases through a share go through ``POST /v1/keys/release`` like any other.

Each route parses, calls one function of keyservice/catalog/shares.py, and answers. A share
the caller may not see is the 404 of an unknown one; a share that is not valid as asked is a
422 naming why; both are audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import Connection

from keyservice.api.changes import refusals
from keyservice.api.encoding import b64decode, b64encode
from keyservice.api.schemas import Id
from keyservice.api.share_models import (
    Invitation,
    ShareAck,
    ShareCreate,
    ShareCreated,
    ShareItemPublic,
    SharePublic,
    ShareRevoke,
)
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog import share_receipts, shares
from keyservice.deps import CurrentCaller, Db, State
from keyservice.enrolment import invite
from keyservice.errors import InvalidChangeError
from keyservice.state import ServiceState
from vault.receipts import ReceivedItem

router = APIRouter()


@contextmanager
def _invalid(
    db: Connection, state: ServiceState, caller: Caller, action: str, detail: dict[str, str]
) -> Iterator[None]:
    """An invalid share is refused (422) with nothing changed, and the refusal audited."""
    try:
        yield
    except InvalidChangeError as invalid:
        refuse(
            db,
            state,
            caller,
            action,
            {**detail, "reason": "invalid"},
            status=422,
            message=str(invalid),
        )


def _public(found: shares.StoredShare, *, now: datetime) -> SharePublic:
    state = "active"
    if found.revoked_at is not None and found.revoked_at <= now:
        state = "revoked"
    elif not found.valid_from <= now < found.valid_to:
        state = "expired"
    cap = found.download_cap
    return SharePublic(
        share_id=found.share_id,
        recipient_id=found.recipient_id,
        basis=found.basis,  # type: ignore[arg-type]
        basis_id=found.basis_id,
        child_id=found.child_id,
        purpose=found.purpose,
        created_by=found.created_by,
        created_at=found.created_at,
        valid_from=found.valid_from,
        valid_to=found.valid_to,
        download_cap=cap,
        state=state,  # type: ignore[arg-type]
        revoked_at=found.revoked_at,
        revoked_by=found.revoked_by,
        revoke_reason=found.revoke_reason,
        status=share_receipts.status_of(found, now=now),
        opened_at=found.opened_at,
        acknowledged_at=found.acknowledged_at,
        acknowledged_device=found.acknowledged_device,
        ack_due=found.ack_due,
        overdue=share_receipts.is_overdue(found, now=now),
        items=[
            ShareItemPublic(
                record_id=item.record_id,
                version=item.version,
                used=item.used,
                remaining=None if cap is None else max(cap - item.used, 0),
                ciphertext_size=item.ciphertext_size,
            )
            for item in found.items
        ],
    )


@router.post("/v1/shares", response_model=ShareCreated, status_code=201)
def create_share(body: ShareCreate, caller: CurrentCaller, db: Db, state: State) -> ShareCreated:
    """Share records with one outside recipient on a consent or court order, at once; with an
    invitation (a one-time enrolment code) when the recipient has no device yet."""
    now = state.clock()
    detail = {"basis": body.basis, "basis_id": body.basis_id, "recipient_id": body.recipient_id}
    with refusals(db, state, caller), _invalid(db, state, caller, "share.create", detail):
        made = shares.create_share(
            db,
            caller,
            recipient_id=body.recipient_id,
            basis=body.basis,
            basis_id=body.basis_id,
            purpose=body.purpose,
            record_ids=body.record_ids,
            categories=body.categories,
            valid_to=body.valid_to,
            download_cap=body.download_cap,
            ack_due=body.ack_due,
            now=now,
        )
    invited = invite(
        db,
        principal_id=made.recipient_id,
        share_id=made.share_id,
        share_valid_to=made.valid_to,
        issued_by=caller.principal_id,
        issued_device=caller.device_id,
        now=now,
    )
    seq = audit(
        db,
        state,
        caller,
        "share.create",
        {
            **detail,
            "share_id": made.share_id,
            "items": [[item.record_id, item.version] for item in made.items],
            "valid_to": made.valid_to.isoformat(),
            "download_cap": made.download_cap,
            "ack_due": made.ack_due.isoformat() if made.ack_due else None,
            "invitation_expires_at": invited[1].isoformat() if invited else None,
        },
    )
    shares.log_disclosure(db, made, audit_seq=seq)
    db.commit()
    return ShareCreated(
        **_public(made, now=now).model_dump(),
        invitation=Invitation(code=invited[0], expires_at=invited[1]) if invited else None,
    )


@router.get("/v1/shares", response_model=list[SharePublic])
def list_shares(
    caller: CurrentCaller, db: Db, state: State, overdue: bool = False
) -> list[SharePublic]:
    """The shares the caller made and the shares made for them, newest first; with
    ``overdue=true``, the shares the caller made whose acknowledgement is overdue, most
    overdue first."""
    now = state.clock()
    if overdue:
        return [
            _public(shares.show_share(db, caller, share_id), now=now)
            for share_id in share_receipts.overdue_ids(db, caller, now=now)
        ]
    return [_public(found, now=now) for found in shares.list_shares(db, caller)]


@router.get("/v1/shares/{share_id}", response_model=SharePublic)
def show_share(share_id: Id, caller: CurrentCaller, db: Db, state: State) -> SharePublic:
    with refusals(db, state, caller):
        found = shares.show_share(db, caller, share_id)
    return _public(found, now=state.clock())


@router.post("/v1/shares/{share_id}/revoke", response_model=SharePublic)
def revoke_share(
    share_id: Id, body: ShareRevoke, caller: CurrentCaller, db: Db, state: State
) -> SharePublic:
    """Revoked at once, with a reason: the recipient's next release is refused."""
    now = state.clock()
    detail = {"share_id": share_id}
    with refusals(db, state, caller), _invalid(db, state, caller, "share.revoke", detail):
        revoked = shares.revoke_share(db, caller, share_id, reason=body.reason, now=now)
    audit(db, state, caller, "share.revoke", {**detail, "reason_given": True})
    db.commit()
    return _public(revoked, now=now)


@router.post("/v1/shares/{share_id}/ack", response_model=SharePublic)
def acknowledge_share(
    share_id: Id, body: ShareAck, caller: CurrentCaller, db: Db, state: State
) -> SharePublic:
    """The recipient's device acknowledges what it received, signed (vault/receipts.py).
    The statement and signature go into the audit entry, to be verified again later."""
    now = state.clock()
    with refusals(db, state, caller):
        done = share_receipts.acknowledge(
            db,
            caller,
            share_id,
            items=[
                ReceivedItem(item.record_id, item.version, b64decode(item.ciphertext_sha256))
                for item in body.items
            ],
            signature=b64decode(body.signature),
            now=now,
        )
    audit(
        db,
        state,
        caller,
        share_receipts.ACK,
        {
            "share_id": share_id,
            "items": done.items,
            "statement": done.statement.decode("ascii"),
            "signature": b64encode(done.signature),
            "signing_key": b64encode(done.signing_key),
        },
    )
    db.commit()
    return _public(shares.show_share(db, caller, share_id), now=now)
