"""The one way a request is authenticated (docs/SIGNING.md), without HTTP.

``authenticate_message`` verifies a signed message, resolves its device (refusing unknown and
revoked ones), and spends its nonce in a transaction of its own, committed before the
request's work starts, so a nonce is spent whatever the request's outcome. A key release
spends it later, in its audit entry's transaction (decision 0007): with ``spend_nonce=False``
a nonce already spent is refused here, before the release's work, and the caller must spend
it. Every refusal is audited (keyservice/auth/refusals.py) and raised as
``AuthenticationError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection

from keyservice.auth.nonces import ReplayCache
from keyservice.auth.refusals import (
    DeviceLookup,
    RefusalContext,
    record_refusal,
    refuse_spent_nonce,
    rejection,
)
from keyservice.auth.verifier import verify_request
from keyservice.caller import Caller
from keyservice.db.engine import reading
from keyservice.errors import AuthenticationError


@dataclass(frozen=True)
class SignedMessage:
    """A request as the verifier reads it: the target URI as received, the raw header
    fields, the body; and the client address its refusal is counted against."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    source: str


class AuthContext(RefusalContext, Protocol):
    """What authentication needs of the running service (keyservice.state.ServiceState)."""

    @property
    def replay_cache(self) -> ReplayCache: ...


def authenticate_message(
    db: Connection, message: SignedMessage, state: AuthContext, *, spend_nonce: bool = True
) -> Caller:
    """Verify ``message``, or audit the reason and raise ``AuthenticationError``.

    Sync (database reads); run it in a worker thread. A database that cannot be read while
    the device is looked up raises that database error instead (503: not the caller's fault).
    """
    lookup = DeviceLookup(db)
    now = state.clock()
    try:
        # The key lookup and the signature check hold no write lock; the nonce starts the
        # request's write transaction.
        with reading(db):
            signed = verify_request(
                method=message.method,
                url=message.url,
                headers=message.headers,
                body=message.body,
                audience=state.settings.audience,
                now=now.timestamp(),
                resolve_key=lookup.resolve,
            )
            lookup.verified = True
            # A release spends its nonce only in its audit batch: a replay is refused here,
            # before its items are read, unwrapped and sealed (one indexed read); a copy
            # racing the original past this check is still refused by the batch.
            if not spend_nonce:
                refuse_spent_nonce(
                    db, state.replay_cache, device_id=signed.device_id, nonce=signed.nonce
                )
        if spend_nonce:
            state.replay_cache.remember(db, device_id=signed.device_id, nonce=signed.nonce, now=now)
    except AuthenticationError as exc:
        if lookup.db_error is not None:
            raise lookup.db_error from exc
        event = lookup.rejection(exc.reason, method=message.method, source=message.source)
        record_refusal(db, state, event)
        raise
    return lookup.caller(device_id=signed.device_id, nonce=signed.nonce)


def spend_alone(
    db: Connection, state: AuthContext, caller: Caller, *, method: str, source: str
) -> None:
    """Spend the nonce of a request authenticated with ``spend_nonce=False`` on its own.

    For such a request that ends before its nonce reaches its audit entry (an invalid body,
    say): a replay is refused and audited like any other.
    """
    try:
        state.replay_cache.remember(
            db, device_id=caller.device_id, nonce=caller.nonce, now=state.clock()
        )
    except AuthenticationError as exc:
        event = rejection(
            exc.reason,
            method=method,
            source=source,
            principal_id=caller.principal_id,
            device_id=caller.device_id,
        )
        record_refusal(db, state, event)
        raise
