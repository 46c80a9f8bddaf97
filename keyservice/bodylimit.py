"""A cap on API request bodies, answered as a 413 problem (RFC 9457) before any work.

The JSON API never needs more than about 60 KB (a 1,000-item release); without a cap a
client could make the service buffer an unbounded body before validation even starts. The
blob routes stream to disk under their own, larger limit and are left alone here.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyservice.problems import problem
from vault.storage import BLOB_ROUTE

MAX_JSON_BODY = 1024 * 1024
TOO_LARGE = f"the request body is larger than {MAX_JSON_BODY} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(BLOB_ROUTE):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await problem(413, TOO_LARGE)(scope, receive, send)
            return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # Raised into the body read; the app's handler turns it into the problem.
                raise HTTPException(status_code=413, detail=TOO_LARGE)
            return message

        await self.app(scope, capped, send)
