"""FastAPI dependencies: the service state, a database connection, and the signed caller.

    CurrentCaller = Annotated[Caller, Depends(current_caller)]

``authenticate`` verifies the request signature (docs/SIGNING.md), loads the device and its
principal in one query, rejects revoked ones, and records the nonce in a transaction of its
own, committed before the request's work starts (so a nonce is spent whatever the request's
outcome). Every failure is the same 401; the reason goes to the log and the audit, counted
per source and coalesced past the first few (decision 0011). The key release route calls it
directly, in its one worker-thread hop, and spends the nonce in its audit entry's transaction
instead (decision 0007).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from keyservice.audit.chain import AuditEvent
from keyservice.audit.group import REPLAYED
from keyservice.audit.record import append_event, refuse
from keyservice.auth.rejections import client_source
from keyservice.auth.verifier import verify_request
from keyservice.caller import Caller
from keyservice.db.engine import reading
from keyservice.db.tables import devices, principals
from keyservice.errors import AuthenticationError
from keyservice.ids import is_id
from keyservice.state import ServiceState

log = logging.getLogger("keyservice.auth")

AUTH_FAILED = "authentication failed"


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def get_db(state: State) -> AsyncIterator[Connection]:
    """One connection per request; work that is not committed is rolled back at the end.

    Async on purpose: a pool checkout and return are quick, and a sync generator would cost
    two thread-pool hops per request, which profiling showed to be the largest overhead.
    """
    with state.engine.connect() as connection:
        yield connection


Db = Annotated[Connection, Depends(get_db)]


async def request_body(request: Request) -> bytes:
    return await request.body()


def request_url(request: Request) -> str:
    """The target URI as received: scheme, Host header, raw path and raw query."""
    scope = request.scope
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    host = request.headers.get("host", "")
    url = f"{request.url.scheme}://{host}{raw_path.decode('latin-1')}"
    return f"{url}?{query.decode('latin-1')}" if query else url


@dataclass
class _Lookup:
    """What key resolution learnt, for the audit entry of a rejected request. Until the
    signature has verified, the key id is only what the request claims."""

    key_id: str | None = None
    principal_id: str | None = None
    row: Row[*tuple[Any, ...]] | None = None
    db_error: SQLAlchemyError | None = None
    verified: bool = False


# Built once: constructing a statement and its cache key cost more than running it.
_DEVICE = (
    select(
        devices.c.principal_id,
        devices.c.signing_key,
        devices.c.receiving_key,
        devices.c.revoked_at.label("device_revoked_at"),
        principals.c.kind,
        principals.c.roles,
        principals.c.display_name,
        principals.c.organisation,
        principals.c.revoked_at,
    )
    .join(principals, principals.c.principal_id == devices.c.principal_id)
    .where(devices.c.device_id == bindparam("device_id"))
)


def _load_device(db: Connection, device_id: str) -> Row[*tuple[Any, ...]] | None:
    """The device and its principal, revocation of both included, in one query."""
    return db.execute(_DEVICE, {"device_id": device_id}).first()


def authenticate(
    request: Request,
    body: bytes,
    db: Connection,
    state: ServiceState,
    *,
    spend_nonce: bool = True,
) -> Caller:
    """The one way a request is authenticated: verify it, or audit the reason and raise 401.

    Sync (database reads); run it in a worker thread. With ``spend_nonce=False`` the caller
    must spend ``Caller.nonce`` itself before anything is released: a key release spends it
    in its audit entry's group commit (decision 0007), and a replay racing its original is
    refused there; a nonce already spent is refused here, before the caller's work.
    """
    found = _Lookup()

    def resolve_key(key_id: str) -> Ed25519PublicKey:
        if not is_id(key_id):
            raise AuthenticationError("unknown_device")
        found.key_id = key_id
        try:
            row = _load_device(db, key_id)
        except SQLAlchemyError as exc:
            found.db_error = exc
            raise AuthenticationError("database_unavailable") from exc
        if row is None:
            raise AuthenticationError("unknown_device")
        found.principal_id = row.principal_id
        if row.device_revoked_at is not None:
            raise AuthenticationError("revoked_device")
        if row.revoked_at is not None:
            raise AuthenticationError("revoked_principal")
        found.row = row
        return Ed25519PublicKey.from_public_bytes(row.signing_key)

    now = state.clock()
    try:
        # The key lookup and the signature check hold no write lock; the nonce starts the
        # request's write transaction.
        with reading(db):
            signed = verify_request(
                method=request.method,
                url=request_url(request),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                body=body,
                audience=state.settings.audience,
                now=now.timestamp(),
                resolve_key=resolve_key,
            )
            found.verified = True
            # A release spends its nonce only in its audit batch: a replay is refused here,
            # before its items are read, unwrapped and sealed (one indexed read); a copy
            # racing the original past this check is still refused by the batch.
            if not spend_nonce and state.replay_cache.seen(
                db, device_id=signed.device_id, nonce=signed.nonce
            ):
                raise AuthenticationError(REPLAYED)
        if spend_nonce:
            state.replay_cache.remember(db, device_id=signed.device_id, nonce=signed.nonce, now=now)
    except AuthenticationError as exc:
        if found.db_error is not None:
            # Not the caller's fault: answer 503 (problems.py), not 401.
            raise found.db_error from exc
        raise _reject(db, state, request, exc.reason, found) from exc
    row = found.row
    assert row is not None
    return Caller(
        principal_id=row.principal_id,
        device_id=signed.device_id,
        kind=row.kind,
        roles=frozenset(row.roles.split()),
        display_name=row.display_name,
        organisation=row.organisation,
        receiving_key=row.receiving_key,
        nonce=signed.nonce,
    )


def spend_nonce_alone(
    request: Request, db: Connection, state: ServiceState, caller: Caller
) -> None:
    """Spend the nonce of a request authenticated with ``spend_nonce=False`` on its own.

    For such a request that ends before its nonce reaches its audit entry (an invalid body,
    say): a replay is answered 401 and audited like any rejected request.
    """
    try:
        state.replay_cache.remember(
            db, device_id=caller.device_id, nonce=caller.nonce, now=state.clock()
        )
    except AuthenticationError as exc:
        found = _Lookup(key_id=caller.device_id, principal_id=caller.principal_id, verified=True)
        raise _reject(db, state, request, exc.reason, found) from exc


def rejection(
    request: Request,
    reason: str,
    *,
    principal_id: str | None = None,
    device_id: str | None = None,
    claimed_device: str | None = None,
) -> AuditEvent:
    """The ``auth.reject`` entry of a refused request: the reason is audited, never told.

    The actor is a device whose signature verified (a replay, say); a key id that did not
    verify is anyone's to write, so it is only recorded as ``claimed_device``.
    """
    detail = {"reason": reason, "method": request.method, "source": client_source(request.scope)}
    if claimed_device is not None:
        detail["claimed_device"] = claimed_device
    return AuditEvent(
        action="auth.reject",
        outcome="deny",
        actor_principal=principal_id,
        actor_device=device_id,
        detail=detail,
    )


def rejected(request: Request, reason: str) -> HTTPException:
    """Log a refused request and return the one generic 401 to raise."""
    log.warning("request rejected: %s %s reason=%s", request.method, request.url.path, reason)
    return HTTPException(status_code=401, detail=AUTH_FAILED)


def _reject(
    db: Connection, state: ServiceState, request: Request, reason: str, found: _Lookup
) -> HTTPException:
    """Count a rejected request and audit it in a transaction of its own, unless its source
    is past its one-by-one entries for the reason (then it is only counted, decision 0011);
    return the 401 to raise."""
    db.rollback()
    if found.verified:
        event = rejection(request, reason, principal_id=found.principal_id, device_id=found.key_id)
    else:
        event = rejection(request, reason, claimed_device=found.key_id)
    admitted = state.rejections.admit(event)
    if admitted is not None:
        append_event(db, state, admitted)
        db.commit()
    return rejected(request, reason)


def current_caller(
    request: Request,
    body: Annotated[bytes, Depends(request_body)],
    db: Db,
    state: State,
) -> Caller:
    """The signed caller of a request, as a dependency: ``authenticate``, nonce spent first."""
    return authenticate(request, body, db, state)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def require_admin(request: Request, caller: CurrentCaller, db: Db, state: State) -> Caller:
    if not caller.has_role("admin"):
        refuse(
            db,
            state,
            caller,
            "admin.refused",
            {"method": request.method},
            status=403,
            message="this needs the admin role",
        )
    return caller


AdminCaller = Annotated[Caller, Depends(require_admin)]
