"""Key release: ``POST /v1/keys/release`` for up to 1,000 record versions at once.

The route authenticates, parses the body, hands the items to
``keyservice.catalog.release.decide_and_seal`` (decide, unwrap, seal; one audit entry listing
every item's decision), waits for that entry's group commit, and answers: no key leaves
before the entry is durable. A denied item says only ``unavailable``, whether the record is
missing, uncommitted, deleted or forbidden. An item without a version asks for the record's
latest committed version, and its result says which version that was.

The route is a coroutine with one worker-thread hop for all of its sync work (authentication
included: the same ``keyservice.deps.authenticate`` as every other route). Its nonce is spent
in the transaction of its audit entry, not in one of its own before the work (decision 0007):
a replay gets the one generic 401 and an ``auth.reject`` entry instead of its release entry.
A nonce already spent is refused before the work, by a read in ``authenticate``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from keyservice.api.encoding import b64encode
from keyservice.api.record_models import ReleaseRequest, ReleaseResponse
from keyservice.audit.group import AuditWrite
from keyservice.auth.refusals import nonce_claim
from keyservice.auth.rejections import client_source
from keyservice.catalog.release import Asked, Pair, Release, decide_and_seal
from keyservice.catalog.uploads import INLINE_CIPHERTEXT_MAX
from keyservice.deps import authenticate, spend_nonce_alone
from keyservice.state import ServiceState
from vault.storage import StorageError

router = APIRouter()
log = logging.getLogger("keyservice.release")

UNAVAILABLE = "unavailable"
DOWNLOAD_URL_S = 300
# The most ciphertext one release answers inline, in all (decision 0030): four records at the
# largest inline size; later small items get their download URL only.
INLINE_RELEASE_MAX = 4 * INLINE_CIPHERTEXT_MAX


def _body_schema() -> dict[str, Any]:
    """``ReleaseRequest``'s JSON schema with its definitions inlined, for the OpenAPI document
    (the route reads its body itself, after authentication, so FastAPI does not see it)."""
    schema = ReleaseRequest.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }


@dataclass(frozen=True)
class _Prepared:
    """A release decided and sealed, waiting for its audit entry to be durable."""

    asked: list[Asked]
    release: Release
    write: AuditWrite
    # Download URLs of the versions granted, if asked for: presigned in the worker thread, not
    # on the event loop, and returned only after the commit (they grant only ciphertext).
    urls: dict[Pair, str] = field(default_factory=dict)
    # Whether the small versions granted are answered with their ciphertext (decision 0030).
    inline: bool = False


@router.post(
    "/v1/keys/release",
    response_model=ReleaseResponse,
    response_model_exclude_none=True,
    openapi_extra=_body_schema(),
)
async def release_keys(request: Request) -> Response:
    """Authenticate, decide, unwrap and seal in one worker-thread hop; wait for the audit
    entry's group commit on the event loop; answer. No thread and no database connection is
    held while waiting, and none is checked out on the event loop (a full pool would block
    the loop for the pool's timeout). A replay or revocation the batch finds raises
    ``AuthenticationError``: the generic 401 (keyservice/problems.py)."""
    state: ServiceState = request.app.state.service
    body = await request.body()
    prepared = await run_in_threadpool(_prepare, request, body, state)
    # Returns once the entry, its disclosure rows and the spent nonce are durable: only then
    # do keys leave.
    ciphertexts: dict[Pair, bytes] = {}
    if prepared.inline and prepared.release.sealed:
        # Read from the store in a worker thread while the entry commits; returned, like
        # the keys, only once it is durable (decision 0030).
        _, ciphertexts = await asyncio.gather(
            state.audit_committed(prepared.write),
            run_in_threadpool(_inline, state, prepared.release),
        )
    else:
        await state.audit_committed(prepared.write)
    text = release_json(prepared.asked, prepared.release, prepared.urls, ciphertexts)
    return Response(text, media_type="application/json")


def _prepare(request: Request, raw: bytes, state: ServiceState) -> _Prepared:
    """All of a release's sync work, on a connection checked out and returned in this
    worker thread: authenticate, validate, decide, unwrap, seal; then presign URLs."""
    with state.engine.connect() as db:
        caller = authenticate(request, raw, db, state, spend_nonce=False)
        try:
            body = ReleaseRequest.model_validate_json(raw)
        except ValidationError as exc:
            spend_nonce_alone(request, db, state, caller)
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in errors]
            ) from exc
        asked: list[Asked] = [(item.record_id, item.version) for item in body.items]
        released = decide_and_seal(
            db,
            caller=caller,
            asked=asked,
            child_keys=state.child_keys,
            now=state.clock(),
            through_share=body.share_id,
        )
    claim = nonce_claim(caller, method=request.method, source=client_source(request.scope))
    prepared = _Prepared(
        asked, released, AuditWrite(released.event, (released.disclosures,), claim)
    )
    if body.include_ciphertext:
        prepared = replace(prepared, inline=True)
    if not body.include_urls:
        return prepared
    # With the connection back in the pool: 1,000 presigns take about 0.4 s.
    urls = {
        pair: state.blobs.presign_get(released.versions[pair].object_name, expires_s=DOWNLOAD_URL_S)
        for pair in released.sealed
    }
    return replace(prepared, urls=urls)


def _inline(state: ServiceState, released: Release) -> dict[Pair, bytes]:
    """The ciphertext of the small versions granted, in the order asked, up to
    ``INLINE_RELEASE_MAX`` bytes in all; only granted ones: a denial carries nothing. A
    store that fails to answer one leaves it to its download URL (the client checks the
    digest of whichever bytes it gets)."""
    found: dict[Pair, bytes] = {}
    total = 0
    for pair in released.sealed:
        row = released.versions[pair]
        if row.ciphertext_size > INLINE_CIPHERTEXT_MAX:
            continue
        if total + row.ciphertext_size > INLINE_RELEASE_MAX:
            break
        try:
            reader = state.blobs.get(row.object_name)
            try:
                data = reader.read()
            finally:
                reader.close()
        except StorageError:
            log.warning("release: an inline ciphertext could not be read", exc_info=True)
            continue
        found[pair] = data
        total += len(data)
    return found


def release_json(
    asked: list[Asked],
    release: Release,
    urls: dict[Pair, str],
    ciphertexts: dict[Pair, bytes] | None = None,
) -> bytes:
    """The answer as JSON text: ``ReleaseResponse``, one result per item asked, in order.

    Written directly, not through the model: building a dict per item and encoding it was a
    fifth of a 1,000-key release, and validating a model again cost as much (measured again
    for issue 13: 3.5 ms for 1,000 granted items, against 5 ms through ``model_validate``
    and ``model_dump_json`` and 10 ms through ``model_construct``).
    tests/keyservice/test_release_response.py checks that the text is what the model gives.
    Only values whose text is known to need no escaping go in raw: ids the request's
    validation made 32-hex, integers, and base64url; anything else goes through ``_json``.
    """
    resolved, sealed, versions, children = (
        release.resolved,
        release.sealed,
        release.versions,
        release.children,
    )
    # Records of one child (or one group) share their child ids' and category's JSON.
    encoded: dict[object, str] = {}
    parts: list[str] = []
    for item in asked:
        pair = resolved.get(item)
        if pair is None or pair not in sealed:
            rid, asked_version = item
            parts.append(
                _json(
                    {
                        "record_id": rid,
                        "version": asked_version,
                        "status": "denied",
                        "code": UNAVAILABLE,
                    }
                )
            )
            continue
        rid, version = pair
        row = versions[pair]
        ids = children[rid]
        attributes = encoded.get((row.category, *ids))
        if attributes is None:
            attributes = encoded[(row.category, *ids)] = (
                f'"child_ids":{_json(ids)},"category":{_json(row.category)}'
            )
        optional = ""
        if row.encrypted_metadata is not None:
            optional = f',"encrypted_metadata":"{b64encode(row.encrypted_metadata)}"'
        url = urls.get(pair)
        if url is not None:
            optional += f',"download_url":{_json(url)}'
        inline = ciphertexts.get(pair) if ciphertexts else None
        if inline is not None:
            optional += f',"ciphertext":"{b64encode(inline)}"'
        parts.append(
            f'{{"record_id":"{rid}","version":{version:d},"status":"granted",'
            f'"attributes":{{"record_id":"{rid}","version":{version:d},'
            f"{attributes}}},"
            f'"sealed_key":"{b64encode(sealed[pair])}",'
            # What the commit checked, so the client can check the bytes it downloads.
            f'"ciphertext_size":{row.ciphertext_size:d},'
            f'"ciphertext_digest_alg":{_ALGS[row.ciphertext_digest_alg]},'
            f'"ciphertext_digest":"{b64encode(row.ciphertext_sha256)}"{optional}}}'
        )
    text = (
        f'{{"ephemeral_public":"{b64encode(release.ephemeral_public)}",'
        f'"results":[{",".join(parts)}]}}'
    )
    return text.encode("ascii")


_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
# The ciphertext digest algorithms as JSON text (a stored value outside them is a KeyError).
_ALGS = {"blake3": '"blake3"', "sha256": '"sha256"'}
