"""The outermost middleware: a request id for every request, its access log line, its metrics.

The request id is the client's ``X-Request-Id`` if it looks like one (8 to 64 of
``A-Z a-z 0-9 . _ -``), else a new random one; it is echoed in the answer's ``X-Request-Id``
and carried by every log line written while the request runs (keyservice/ops/logs.py). The
access line and the metrics name the route *template*, never the path.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyservice.ops.logs import REQUEST_ID_HEADER, access_log, new_request_id, request_id
from keyservice.ops.metrics import Metrics

UNMATCHED = "(unmatched)"
_HEADER = REQUEST_ID_HEADER.encode()


class Observe:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        offered = next((v for k, v in scope["headers"] if k == _HEADER), None)
        rid = new_request_id(offered)
        token = request_id.set(rid)
        status = 500
        header = (_HEADER, rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope["method"]
            self.metrics.answered(method, template, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    method,
                    template,
                    status,
                    extra={
                        "method": method,
                        "route": template,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                    },
                )
            request_id.reset(token)
