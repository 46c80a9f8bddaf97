"""Shares to outside recipients (issue 14): made by the child's manager or DSL on a consent or
a disclosing court order, seen by their creator and their recipient, revoked with a reason.
Releases through a share go through ``POST /v1/keys/release`` like any other, or, for the
first batch of a download, come with the share itself: ``POST /v1/shares/{id}/open``
(docs/decisions/0021-share-open.md) answers the share and releases, through it, the first
items the recipient's device does not hold yet, in one signed round trip.

Each route parses, calls one function of keyservice/catalog/shares.py, and answers. A share
the caller may not see is the 404 of an unknown one; a share that is not valid as asked is a
422 naming why; both are audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from keyservice.api.changes import refusals
from keyservice.api.encoding import b64decode, b64encode
from keyservice.api.record_models import Attributes, DigestAlg, ReleaseResponse, ReleaseResult
from keyservice.api.schemas import MAX_RELEASE_ITEMS, Id
from keyservice.api.share_models import (
    Invitation,
    ShareAck,
    ShareCreate,
    ShareCreated,
    ShareItemPublic,
    ShareOpen,
    ShareOpened,
    SharePublic,
    ShareRevoke,
)
from keyservice.audit.group import AuditWrite
from keyservice.audit.record import audit, refuse
from keyservice.auth.refusals import nonce_claim
from keyservice.auth.rejections import client_source
from keyservice.caller import Caller
from keyservice.catalog import share_receipts, shares
from keyservice.catalog.release import Asked, Pair, Release, decide_and_seal
from keyservice.deps import CurrentCaller, Db, State, authenticate, spend_nonce_alone
from keyservice.enrolment import invite
from keyservice.errors import DeniedError, InvalidChangeError
from keyservice.state import ServiceState
from vault.receipts import ReceivedItem

router = APIRouter()

# As long as the download URLs of ``POST /v1/keys/release``.
DOWNLOAD_URL_S = 300


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


@dataclass(frozen=True)
class _Opening:
    """A share opened, with its release decided and sealed (if any), waiting for the
    release's audit entry to be durable."""

    share: SharePublic
    asked: list[Asked]
    release: Release | None
    write: AuditWrite | None
    urls: dict[Pair, str]


@router.post("/v1/shares/{share_id}/open", response_model=ShareOpened)
async def open_share(share_id: Id, request: Request) -> Response:
    """The recipient opens a share to download it: the share, and the first items its device
    does not hold released through it, in one signed round trip. The release is
    ``POST /v1/keys/release``'s own (``decide_and_seal`` through this share: the same
    decisions, cap counts, audit entry, disclosure rows and opening), and, as there, no key
    leaves before its audit entry is durable. Anyone but the recipient gets the 404 of an
    unknown share, audited as ``GET /v1/shares/{id}`` audits it."""
    state: ServiceState = request.app.state.service
    raw = await request.body()
    opening = await run_in_threadpool(_open, request, raw, share_id, state)
    if opening.write is not None:
        await state.audit_committed(opening.write)
    release = "null"
    if opening.release is not None:
        release = _release_answer(opening.asked, opening.release, opening.urls).model_dump_json(
            exclude_none=True
        )
    text = f'{{"share":{opening.share.model_dump_json()},"release":{release}}}'
    return Response(text, media_type="application/json")


def _open(request: Request, raw: bytes, share_id: str, state: ServiceState) -> _Opening:
    """All of an opening's sync work on one connection, in a worker thread. The nonce is
    spent with the release's audit entry, or on its own when nothing is released."""
    with state.engine.connect() as db:
        caller = authenticate(request, raw, db, state, spend_nonce=False)
        try:
            body = ShareOpen.model_validate_json(raw)
        except ValidationError as exc:
            spend_nonce_alone(request, db, state, caller)
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in errors]
            ) from exc
        now = state.clock()
        try:
            found = shares.open_share(db, caller, share_id)
        except DeniedError as denied:
            # The reads' transaction ends first: the nonce is committed on its own.
            db.rollback()
            spend_nonce_alone(request, db, state, caller)
            refuse(
                db,
                state,
                caller,
                denied.action,
                denied.detail,
                status=denied.status,
                message=str(denied),
            )
        public = _public(found, now=now)
        asked: list[Asked] = []
        if public.state == "active":
            asked = list(
                shares.first_release(
                    found,
                    held=[(item.record_id, item.version) for item in body.held],
                    budget=body.first_bytes,
                    limit=MAX_RELEASE_ITEMS,
                )
            )
        if not asked:
            # An inactive share releases nothing: the client stops there, as it did on the
            # share's state before this route.
            db.rollback()
            spend_nonce_alone(request, db, state, caller)
            return _Opening(public, [], None, None, {})
        released = decide_and_seal(
            db,
            caller=caller,
            asked=asked,
            child_keys=state.child_keys,
            now=now,
            through_share=share_id,
        )
    claim = nonce_claim(caller, method=request.method, source=client_source(request.scope))
    write = AuditWrite(released.event, (released.disclosures,), claim)
    urls = {
        pair: state.blobs.presign_get(released.versions[pair].object_name, expires_s=DOWNLOAD_URL_S)
        for pair in released.sealed
    }
    return _Opening(public, asked, released, write, urls)


def _release_answer(asked: list[Asked], release: Release, urls: dict[Pair, str]) -> ReleaseResponse:
    """The release as ``POST /v1/keys/release`` answers it, one result per item asked, in
    order (an opening asks at most a few hundred items: built through the model)."""
    results = []
    for item in asked:
        pair = release.resolved.get(item)
        if pair is None or pair not in release.sealed:
            results.append(
                ReleaseResult(
                    record_id=item[0], version=item[1], status="denied", code="unavailable"
                )
            )
            continue
        row = release.versions[pair]
        results.append(
            ReleaseResult(
                record_id=pair[0],
                version=pair[1],
                status="granted",
                attributes=Attributes(
                    record_id=pair[0],
                    version=pair[1],
                    child_ids=release.children[pair[0]],
                    category=row.category,
                ),
                sealed_key=b64encode(release.sealed[pair]),
                ciphertext_size=row.ciphertext_size,
                # pydantic checks the stored name against DigestAlg as the model is built
                ciphertext_digest_alg=cast(DigestAlg, row.ciphertext_digest_alg),
                ciphertext_digest=b64encode(row.ciphertext_sha256),
                encrypted_metadata=(
                    None if row.encrypted_metadata is None else b64encode(row.encrypted_metadata)
                ),
                download_url=urls.get(pair),
            )
        )
    return ReleaseResponse(ephemeral_public=b64encode(release.ephemeral_public), results=results)
