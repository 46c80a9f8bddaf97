"""The local-directory store's object URLs, ``GET/PUT /v1/blobs/{token}``.

The token in the path is the authorisation: it is signed by the service, names one object
(or one part of an upload) and one method, and expires; an upload token also carries the
exact size of the body it takes. An upload is taken only while the version it was issued for
is still pending, so a token dies with its version (committed, swept or shredded), unlike a
presigned S3 URL (docs/decisions/0010-upload-bounds.md). These routes exist only when the blob
store is a ``LocalDirectoryStore``; with S3 the URLs point at the bucket. The token is checked,
and the one object it names read or written, by ``keyservice.localblobs``; here are the HTTP
body, ranges and statuses, and the checks of the version the upload belongs to.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
from collections.abc import Iterator
from typing import IO

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from keyservice.catalog.uploads import version_state
from keyservice.db.tables import COMMITTED, PENDING
from keyservice.deps import State
from keyservice.localblobs import BlobServer
from keyservice.state import ServiceState
from vault.storage import (
    BlobGrant,
    BlobReader,
    InvalidToken,
    LocalDirectoryStore,
    ObjectExists,
    ObjectNotFound,
    WrongSize,
)

router = APIRouter()

CHUNK = 256 * 1024
# Request bodies past this size are spooled to a temporary file, not held in memory.
SPOOL_BYTES = 1024 * 1024
# Objects are written once: a second PUT to a still-valid upload URL must not swap the blob.
ALREADY_WRITTEN = "this object has been uploaded already; objects cannot be replaced"
NOT_PENDING = "no such pending upload; create the record version again"
TOO_LARGE = "the upload is larger than the size its record version was created with"
TOO_SMALL = "the upload is smaller than the size its record version was created with"
# ASCII digits only (``\d`` also matches other scripts' digits), and at most 19 of them, so
# int() never meets a number too long to convert (Python refuses past 4,300 digits).
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


def _server(state: ServiceState) -> BlobServer:
    if not isinstance(state.blobs, LocalDirectoryStore) or state.blob_tokens is None:
        raise HTTPException(status_code=404, detail="this service does not serve blobs")
    return BlobServer(state.blobs, state.blob_tokens)


def _upload_grant(server: BlobServer, token: str) -> BlobGrant:
    """The grant of a valid upload token; a bad token is 403."""
    try:
        return server.grant(token, "PUT", now=time.time())
    except InvalidToken as exc:
        raise HTTPException(status_code=403, detail="the upload URL is not valid") from exc


def _version_state(state: ServiceState, grant: BlobGrant) -> str | None:
    return version_state(state.engine, object_name=grant.name, upload_id=grant.upload_id)


def _check_target(state: ServiceState, store: LocalDirectoryStore, grant: BlobGrant) -> None:
    """An object written already is 409; an upload whose version is no longer pending
    (committed, swept, shredded) is 404."""
    if not grant.is_part:
        try:
            store.stat(grant.name)
        except ObjectNotFound:
            pass
        else:
            raise HTTPException(status_code=409, detail=ALREADY_WRITTEN)
    if _version_state(state, grant) != PENDING:
        raise HTTPException(status_code=404, detail=NOT_PENDING)


def _store(
    state: ServiceState, server: BlobServer, token: str, grant: BlobGrant, body: IO[bytes]
) -> str:
    """Write the body; then, if its version was removed (swept or shredded) while the body
    was received, remove what was written: the sweep or shred deleted the object before this
    write landed, or deletes it after this check."""
    store = server.store
    try:
        etag = server.receive(token, body, now=time.time())
    except InvalidToken as exc:
        raise HTTPException(status_code=403, detail="the upload URL is not valid") from exc
    except ObjectExists as exc:
        raise HTTPException(status_code=409, detail=ALREADY_WRITTEN) from exc
    except ObjectNotFound as exc:
        raise HTTPException(status_code=404, detail=NOT_PENDING) from exc
    except WrongSize as exc:
        raise HTTPException(
            status_code=413 if exc.larger else 400, detail=TOO_LARGE if exc.larger else TOO_SMALL
        ) from exc
    if _version_state(state, grant) not in (PENDING, COMMITTED):
        if grant.upload_id is None:
            store.delete(grant.name)
        else:
            with contextlib.suppress(ObjectNotFound):
                store.abort_multipart(grant.name, upload_id=grant.upload_id)
        raise HTTPException(status_code=404, detail=NOT_PENDING)
    return etag


@router.put("/v1/blobs/{token}", include_in_schema=False)
async def put_blob(token: str, request: Request, state: State) -> Response:
    server = _server(state)
    grant = _upload_grant(server, token)
    assert grant.size is not None  # every upload grant has one (BlobGrant)
    # Every refusal comes before any of the body is read.
    await run_in_threadpool(_check_target, state, server.store, grant)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > grant.size:
        raise HTTPException(status_code=413, detail=TOO_LARGE)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > grant.size:
                raise HTTPException(status_code=413, detail=TOO_LARGE)
            spool.write(chunk)
        if received < grant.size:
            raise HTTPException(status_code=400, detail=TOO_SMALL)
        spool.seek(0)
        etag = await run_in_threadpool(_store, state, server, token, grant, spool)
    return Response(status_code=200, headers={"ETag": etag})


@router.get("/v1/blobs/{token}", include_in_schema=False)
def get_blob(token: str, request: Request, state: State) -> StreamingResponse:
    server = _server(state)
    try:
        stream, size = server.send(token, now=time.time())
    except InvalidToken as exc:
        raise HTTPException(status_code=403, detail="the download URL is not valid") from exc
    except ObjectNotFound as exc:
        raise HTTPException(status_code=404, detail="no such object") from exc
    start, end = 0, size - 1
    status = 200
    wanted = request.headers.get("range")
    if wanted is not None:
        found = _RANGE.fullmatch(wanted.strip())
        if found is None or (not found.group(1) and not found.group(2)):
            stream.close()
            raise HTTPException(status_code=416, detail="only one bytes=start-end range")
        if found.group(1):
            start = int(found.group(1))
            end = min(int(found.group(2)), size - 1) if found.group(2) else size - 1
        else:
            start = max(0, size - int(found.group(2)))
        if start > end or start >= size:
            stream.close()
            raise HTTPException(
                status_code=416,
                detail="range not satisfiable",
                headers={"Content-Range": f"bytes */{size}"},
            )
        status = 206
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _chunks(stream, start, end - start + 1),
        status_code=status,
        media_type="application/octet-stream",
        headers=headers,
    )


def _chunks(stream: BlobReader, start: int, length: int) -> Iterator[bytes]:
    try:
        if isinstance(stream, io.IOBase):
            stream.seek(start)
        else:
            _skip(stream, start)
        while length > 0:
            piece = stream.read(min(CHUNK, length))
            if not piece:
                break
            length -= len(piece)
            yield piece
    finally:
        stream.close()


def _skip(stream: BlobReader, count: int) -> None:
    while count > 0:
        piece = stream.read(min(CHUNK, count))
        if not piece:
            return
        count -= len(piece)
