"""The local-directory store's object URLs, ``GET/PUT /v1/blobs/{token}``.

The token in the path is the whole authorisation: it is signed by the service, names one
object (or one part of an upload) and one method, and expires. These routes exist only when
the blob store is a ``LocalDirectoryStore``; with S3 the URLs point at the bucket.
"""

from __future__ import annotations

import io
import re
import tempfile
import time
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from keyservice.deps import State
from vault.storage import (
    BlobReader,
    InvalidToken,
    LocalDirectoryStore,
    ObjectExists,
    ObjectNotFound,
)

router = APIRouter()

CHUNK = 256 * 1024
# Request bodies past this size are spooled to a temporary file, not held in memory.
SPOOL_BYTES = 1024 * 1024
# Objects are written once: a second PUT to a still-valid upload URL must not swap the blob.
ALREADY_WRITTEN = "this object has been uploaded already; objects cannot be replaced"
# ASCII digits only (``\d`` also matches other scripts' digits), and at most 19 of them, so
# int() never meets a number too long to convert (Python refuses past 4,300 digits).
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


def _local(state: State) -> LocalDirectoryStore:
    if not isinstance(state.blobs, LocalDirectoryStore):
        raise HTTPException(status_code=404, detail="this service does not serve blobs")
    return state.blobs


def _check_upload(state: State, store: LocalDirectoryStore, token: str, request: Request) -> None:
    """Refuse an upload before any of its body is read: a bad token (403), a declared size
    over the limit (413), or an object that was written already (409)."""
    if state.blob_tokens is None:
        raise HTTPException(status_code=404, detail="this service does not serve blobs")
    try:
        grant = state.blob_tokens.verify(token, method="PUT", now=time.time())
    except InvalidToken as exc:
        raise HTTPException(status_code=403, detail="the upload URL is not valid") from exc
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > state.settings.max_upload_bytes:
        raise HTTPException(status_code=413, detail="the upload is larger than allowed")
    if not grant.is_part:
        try:
            store.stat(grant.name)
        except ObjectNotFound:
            return
        raise HTTPException(status_code=409, detail=ALREADY_WRITTEN)


@router.put("/v1/blobs/{token}", include_in_schema=False)
async def put_blob(token: str, request: Request, state: State) -> Response:
    store = _local(state)
    _check_upload(state, store, token, request)
    limit = state.settings.max_upload_bytes
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise HTTPException(status_code=413, detail="the upload is larger than allowed")
            spool.write(chunk)
        spool.seek(0)
        try:
            etag = await run_in_threadpool(store.receive, token, spool, now=time.time())
        except InvalidToken as exc:
            raise HTTPException(status_code=403, detail="the upload URL is not valid") from exc
        except ObjectExists as exc:
            raise HTTPException(status_code=409, detail=ALREADY_WRITTEN) from exc
        except ObjectNotFound as exc:
            raise HTTPException(
                status_code=404, detail="no such upload; create the record version again"
            ) from exc
    return Response(status_code=200, headers={"ETag": etag})


@router.get("/v1/blobs/{token}", include_in_schema=False)
def get_blob(token: str, request: Request, state: State) -> StreamingResponse:
    store = _local(state)
    try:
        stream, size = store.send(token, now=time.time())
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
