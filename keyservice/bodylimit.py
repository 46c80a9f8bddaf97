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
# A CSV import (keyservice/api/rooms.py) carries up to 20,000 rows: 10,000 must fit.
IMPORT_ROUTE = "/v1/admin/imports"
MAX_IMPORT_BODY = 4 * 1024 * 1024
# A declared-too-large body up to this size is read and dropped before the 413 is sent: a
# proxy still writing it (nginx buffers whole bodies, up to 8 MiB in deploy/nginx) would
# otherwise meet a closed connection and answer 502 instead of our problem.
DRAIN_LIMIT = 8 * 1024 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(BLOB_ROUTE):
            await self.app(scope, receive, send)
            return
        limit = MAX_IMPORT_BODY if scope["path"] == IMPORT_ROUTE else self.limit
        too_large = (
            TOO_LARGE if limit == self.limit else f"the request body is larger than {limit} bytes"
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            if int(declared) <= DRAIN_LIMIT:
                await _drain(receive)
            await problem(413, too_large)(scope, receive, send)
            return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                # Raised into the body read; the app's handler turns it into the problem.
                raise HTTPException(status_code=413, detail=too_large)
            return message

        await self.app(scope, capped, send)


async def _drain(receive: Receive) -> None:
    """Read the request body to its end, keeping nothing."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
