"""The 429 of a source whose rejected requests passed the limit (keyservice/auth/rejections.py).

Pure ASGI middleware, outermost, so a limited source costs a dictionary lookup: no body is
read, no signature verified, no database touched; the refusal is only counted, and audited
with its count when the source's window ends. For every request it also sets the source its
rejections are counted under (``SOURCE``). ``/healthz`` is never limited: load balancers probe
it from one address.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from keyservice.audit.chain import AuditEvent
from keyservice.auth.rejections import RATE_LIMITED, SOURCE, RejectionLedger, client_source
from keyservice.problems import problem

UNLIMITED = frozenset({"/healthz", "/readyz"})


class RejectionLimit:
    def __init__(self, app: ASGIApp, *, ledger: RejectionLedger) -> None:
        self.app = app
        self.ledger = ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
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
