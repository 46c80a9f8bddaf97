"""FastAPI dependencies: the service state, a database connection, and the signed caller.

    CurrentCaller = Annotated[Caller, Depends(current_caller)]

``authenticate`` reads the request as the signature verifier needs it and hands it to
``keyservice.auth.authenticate`` (docs/SIGNING.md): verify the signature, refuse unknown and
revoked devices, spend the nonce before the request's work. A refusal is audited there and
raised as ``AuthenticationError``, which the API answers with the one generic 401
(keyservice/problems.py). The key release route calls ``authenticate`` directly, in its one
worker-thread hop, and spends the nonce in its audit entry's transaction instead (decision
0007).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from keyservice.audit.record import refuse
from keyservice.auth.authenticate import SignedMessage, authenticate_message, spend_alone
from keyservice.auth.rejections import client_source
from keyservice.caller import Caller
from keyservice.state import ServiceState


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


def signed_message(request: Request, body: bytes) -> SignedMessage:
    """``request`` as the signature verifier reads it, with the address it came from."""
    return SignedMessage(
        method=request.method,
        url=request_url(request),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        body=body,
        source=client_source(request.scope),
    )


def authenticate(
    request: Request,
    body: bytes,
    db: Connection,
    state: ServiceState,
    *,
    spend_nonce: bool = True,
) -> Caller:
    """``keyservice.auth.authenticate.authenticate_message`` for ``request``: the signed caller, or
    ``AuthenticationError`` (audited). Sync; run it in a worker thread."""
    return authenticate_message(db, signed_message(request, body), state, spend_nonce=spend_nonce)


def spend_nonce_alone(
    request: Request, db: Connection, state: ServiceState, caller: Caller
) -> None:
    """Spend the nonce of a request authenticated with ``spend_nonce=False`` on its own
    (``keyservice.auth.authenticate.spend_alone``)."""
    spend_alone(db, state, caller, method=request.method, source=client_source(request.scope))


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
