"""The 429 of a source whose rejected requests passed the limit (keyservice/auth/rejections.py).

Pure ASGI middleware, outermost, so a limited source costs a dictionary lookup: no body is
read, no signature verified, no database touched; the refusal is only counted, and audited
with its count when the source's window ends. For every request it also sets the source its
rejections are counted under (``SOURCE``). ``/healthz`` is never limited: load balancers probe
it from one address.

It also refuses, first of all, a request whose header block is larger than
``MAX_HEADER_BYTES`` (431, as a problem): a signed request's headers are well under 2 KB, and
nginx in front refuses any header line over 8 KB itself (``deploy/nginx/proxy.conf``; uvicorn
drops a block over 16 KB with a bare 400 before any middleware sees it). Like an oversized
body (``keyservice/bodylimit.py``), it is neither counted as a rejection nor audited: nothing
was read or verified.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from keyservice.audit.chain import AuditEvent
from keyservice.auth.rejections import RATE_LIMITED, SOURCE, RejectionLedger, client_source
from keyservice.problems import problem

UNLIMITED = frozenset({"/healthz", "/readyz"})
# The request line's headers, names and values together (docs/API.md, "Limits").
MAX_HEADER_BYTES = 8 * 1024
HEADERS_TOO_LARGE = f"the request's headers are larger than {MAX_HEADER_BYTES} bytes"


class RejectionLimit:
    def __init__(self, app: ASGIApp, *, ledger: RejectionLedger) -> None:
        self.app = app
        self.ledger = ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            too_large = problem(431, HEADERS_TOO_LARGE, title="request header fields too large")
            await too_large(scope, receive, send)
            return
        source = client_source(scope)
        token = SOURCE.set(source)
        try:
            retry = None if scope["path"] in UNLIMITED else self.ledger.retry_after(source)
            if retry is None:
                await self.app(scope, receive, send)
                return
            self.ledger.admit(
                AuditEvent(
                    action="auth.reject",
                    outcome="deny",
                    detail={"reason": RATE_LIMITED, "method": scope["method"]},
                )
            )
            response = problem(
                429,
                f"too many rejected requests from this address; try again in {retry} s (the "
                "limit CAREVAULT_REJECT_LIMIT sets per CAREVAULT_REJECT_WINDOW_SECONDS)",
                title="too many requests",
            )
            response.headers["Retry-After"] = str(retry)
            await response(scope, receive, send)
        finally:
            SOURCE.reset(token)
