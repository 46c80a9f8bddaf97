"""Key release: ``POST /v1/keys/release`` for up to 1,000 record versions at once.

One pass loads everything the batch needs in a fixed number of queries (versions, children,
relationships, wrapped keys), decides each item with the policy, unwraps the granted keys,
seals them all under one key agreement, and writes ONE audit entry listing every item's
decision and basis (ids that match no committed version only as a count and a digest,
docs/AUDIT.md), group-committed with concurrent releases; no key leaves
before that entry is durable. A denied item says only
``unavailable``, whether the record is missing, uncommitted, deleted or forbidden.

The route is a coroutine with one worker-thread hop for all of its sync work (authentication
included: the same ``keyservice.deps.authenticate`` as every other route). Its nonce is spent
in the transaction of its audit entry, not in one of its own before the work (decision 0007):
a replay gets the one generic 401 and an ``auth.reject`` entry instead of its release entry.
A nonce already spent is refused before the work, by a read in ``authenticate``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    String,
    bindparam,
    func,
    literal_column,
    select,
)
from starlette.concurrency import run_in_threadpool

from keyservice.api.encoding import b64encode
from keyservice.api.schemas import ReleaseRequest, ReleaseResponse
from keyservice.audit.chain import AuditEvent
from keyservice.audit.group import AuditWrite, IndexRows
from keyservice.auth.refusals import nonce_claim
from keyservice.auth.rejections import client_source
from keyservice.caller import Caller
from keyservice.catalog.facts import decide_row_reads
from keyservice.db.engine import reading
from keyservice.db.tables import (
    COMMITTED,
    disclosures,
    record_children,
    record_versions,
    records,
    wrapped_record_keys,
)
from keyservice.deps import authenticate, spend_nonce_alone
from keyservice.errors import KeyUnwrapError
from keyservice.keys import unwrap_record_key
from keyservice.policy import Basis
from keyservice.state import ServiceState
from vault.format import RecordAttributes
from vault.sealing import seal_batch
from vault.signing import sealing_context

router = APIRouter()

UNAVAILABLE = "unavailable"
DOWNLOAD_URL_S = 300

# The batch's statements, built once per dialect: constructing a statement and its cache key
# cost more than running it. Each takes the batch's record ids as ``record_ids`` (``_ids``).


def _one_of_the_ids(column: ColumnElement[str], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the bound ``record_ids``.

    SQLite reads them from one JSON array (``json_each``): an expanding list of 1,000 ids
    cost SQLAlchemy more to render and bind than the query cost to run. PostgreSQL takes
    the expanding list.
    """
    if dialect == "sqlite":
        listed: Select[str] = select(literal_column("value", String)).select_from(
            func.json_each(bindparam("record_ids", type_=String()))
        )
        return column.in_(listed)
    return column.in_(bindparam("record_ids", expanding=True))


def _ids(dialect: str, record_ids: Iterable[str]) -> dict[str, Any]:
    """The ``record_ids`` parameter of the statements below, for ``dialect``."""
    listed = list(record_ids)
    return {"record_ids": json.dumps(listed) if dialect == "sqlite" else listed}


class _Statements(NamedTuple):
    versions: Select[Any]
    children: Select[Any]
    wraps: Select[Any]


def _statements(dialect: str) -> _Statements:
    versions = (
        select(
            record_versions.c.record_id,
            record_versions.c.version,
            record_versions.c.object_name,
            record_versions.c.encrypted_metadata,
            record_versions.c.ciphertext_size,
            record_versions.c.ciphertext_sha256,
            record_versions.c.state,
            records.c.category,
            records.c.withheld_from_guardians,
        )
        .join(records, records.c.record_id == record_versions.c.record_id)
        .where(
            # One id list binds faster than (id, version) pairs; versions are checked after.
            # So is the state: given it, SQLite walks every committed version through the
            # state index instead of looking the ids up by primary key.
            _one_of_the_ids(record_versions.c.record_id, dialect),
            records.c.deleted_at.is_(None),
        )
    )
    children = (
        select(record_children.c.record_id, record_children.c.child_id)
        .where(_one_of_the_ids(record_children.c.record_id, dialect))
        # By the primary key, so SQLite looks the ids up instead of scanning the child index.
        .order_by(record_children.c.record_id, record_children.c.child_id)
    )
    wraps = (
        select(wrapped_record_keys)
        .where(_one_of_the_ids(wrapped_record_keys.c.record_id, dialect))
        .order_by(
            wrapped_record_keys.c.record_id,
            wrapped_record_keys.c.version,
            wrapped_record_keys.c.child_id,
        )
    )
    return _Statements(versions, children, wraps)


_BATCH = {dialect: _statements(dialect) for dialect in ("sqlite", "postgresql")}


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

    caller: Caller
    body: ReleaseRequest
    rows: dict[tuple[str, int], Row[*tuple[Any, ...]]]
    children: dict[str, list[str]]
    sealed: dict[tuple[str, int], bytes]
    ephemeral_public: bytes
    write: AuditWrite
    # Download URLs of the granted items, if asked for: presigned in the worker thread, not on
    # the event loop, and returned only after the commit (they grant only ciphertext).
    urls: dict[tuple[str, int], str] = field(default_factory=dict)


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
    the loop for the pool's timeout)."""
    state: ServiceState = request.app.state.service
    body = await request.body()
    prepared = await run_in_threadpool(_prepare, request, body, state)
    # Returns once the entry, its disclosure rows and the spent nonce are durable: only then
    # do keys leave. A replay or revocation the batch finds raises AuthenticationError: the
    # generic 401 (keyservice/problems.py).
    await state.audit_committed(prepared.write)
    return _response(prepared)


def _prepare(request: Request, raw: bytes, state: ServiceState) -> _Prepared:
    """All of a release's sync work, on a connection checked out and returned in this
    worker thread: authenticate, validate, decide, unwrap, seal, presign download URLs."""
    with state.engine.connect() as db:
        prepared = _prepare_on(db, request, raw, state)
    if not prepared.body.include_urls:
        return prepared
    # With the connection back in the pool: 1,000 presigns take about 0.4 s.
    urls = {
        pair: state.blobs.presign_get(prepared.rows[pair].object_name, expires_s=DOWNLOAD_URL_S)
        for pair in prepared.sealed
    }
    return replace(prepared, urls=urls)


def _prepare_on(db: Connection, request: Request, raw: bytes, state: ServiceState) -> _Prepared:
    """``_prepare``'s work that reads the database, on ``db``."""
    caller = authenticate(request, raw, db, state, spend_nonce=False)
    try:
        body = ReleaseRequest.model_validate_json(raw)
    except ValidationError as exc:
        spend_nonce_alone(request, db, state, caller)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc
    now = state.clock()
    pairs = list(dict.fromkeys((item.record_id, item.version) for item in body.items))
    # Everything up to the seal reads a snapshot and holds no write lock (docs/AUDIT.md:
    # only the audit entry, the disclosure rows and the nonce are written).
    with reading(db):
        rows, children, bases, keys = _decide_and_unwrap(db, state, caller, pairs, now)
    granted = [pair for pair in pairs if pair in keys]
    sealed = seal_batch(
        recipient_public=caller.receiving_key,
        context=sealing_context(caller.device_id, caller.nonce),
        items=[(keys[pair][0].canonical(), keys[pair][1]) for pair in granted],
    )
    event = AuditEvent(
        action="keys.release",
        outcome="allow" if granted else "deny",
        actor_principal=caller.principal_id,
        actor_device=caller.device_id,
        detail=_detail(pairs, rows, bases, granted=keys.keys()),
    )
    disclosed = IndexRows(
        disclosures,
        columns=("child_id", "record_id", "version", "basis"),
        rows=[
            (child_id, rid, version, bases[(rid, version)].value)
            for rid, version in granted
            for child_id in children[rid]
        ],
        shared={"principal_id": caller.principal_id, "at": now},
    )
    claim = nonce_claim(caller, method=request.method, source=client_source(request.scope))
    return _Prepared(
        caller=caller,
        body=body,
        rows=rows,
        children=children,
        sealed=dict(zip(granted, sealed.sealed, strict=True)),
        ephemeral_public=sealed.ephemeral_public,
        write=AuditWrite(event, (disclosed,), claim),
    )


def _detail(
    pairs: list[tuple[str, int]],
    rows: Collection[tuple[str, int]],
    bases: dict[tuple[str, int], Basis],
    *,
    granted: Collection[tuple[str, int]],
) -> dict[str, Any]:
    """The release entry's detail (docs/AUDIT.md): every item that names a committed record
    version with its decision and basis; the others, ids any caller can make up by the
    thousand, only as their count and a digest, so they cannot grow the entry."""
    items: list[list[str | int]] = []
    unknown: list[tuple[str, int]] = []
    for rid, version in pairs:
        if (rid, version) in granted:
            items.append([rid, version, "granted", bases[(rid, version)].value])
        elif (rid, version) in rows:
            items.append([rid, version, "denied", Basis.NONE.value])
        else:
            unknown.append((rid, version))
    if not unknown:
        return {"items": items}
    listed = json.dumps(sorted(unknown), separators=(",", ":")).encode("ascii")
    return {
        "items": items,
        "unknown": {"count": len(unknown), "sha256": hashlib.sha256(listed).hexdigest()},
    }


def _response(prepared: _Prepared) -> Response:
    """One result per item asked for, in order; a denied item says only ``unavailable``.

    The shape is ``ReleaseResponse`` (the OpenAPI schema says so). A granted item is written
    as JSON text directly: building a dict per item and encoding it was a fifth of a
    1,000-key release, and validating a model again cost as much. Only values whose text is
    known to need no escaping go in raw: ids the database matched (the request's ids are
    32-hex by validation), integers, and base64url; anything else goes through ``_json``.
    """
    rows, children, sealed, urls = prepared.rows, prepared.children, prepared.sealed, prepared.urls
    # Records of one child (or one group) share their child ids' and category's JSON.
    encoded: dict[object, str] = {}
    parts: list[str] = []
    for item in prepared.body.items:
        rid, version = item.record_id, item.version
        pair = (rid, version)
        if pair not in sealed:
            parts.append(
                _json(
                    {"record_id": rid, "version": version, "status": "denied", "code": UNAVAILABLE}
                )
            )
            continue
        row = rows[pair]
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
        parts.append(
            f'{{"record_id":"{rid}","version":{version:d},"status":"granted",'
            f'"attributes":{{"record_id":"{rid}","version":{version:d},'
            f"{attributes}}},"
            f'"sealed_key":"{b64encode(sealed[pair])}",'
            # What the commit checked, so the client can check the bytes it downloads.
            f'"ciphertext_size":{row.ciphertext_size:d},'
            f'"ciphertext_sha256":"{b64encode(row.ciphertext_sha256)}"{optional}}}'
        )
    text = (
        f'{{"ephemeral_public":"{b64encode(prepared.ephemeral_public)}",'
        f'"results":[{",".join(parts)}]}}'
    )
    return Response(text.encode("ascii"), media_type="application/json")


_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


def _decide_and_unwrap(
    db: Connection,
    state: ServiceState,
    caller: Caller,
    pairs: list[tuple[str, int]],
    now: datetime,
) -> tuple[
    dict[tuple[str, int], Row[*tuple[Any, ...]]],
    dict[str, list[str]],
    dict[tuple[str, int], Basis],
    dict[tuple[str, int], tuple[RecordAttributes, bytes]],
]:
    """Load the batch in a fixed number of queries, decide each item, unwrap the granted."""
    wanted = set(pairs)
    dialect = db.dialect.name
    rows = {
        (row.record_id, row.version): row
        for row in db.execute(_BATCH[dialect].versions, _ids(dialect, {rid for rid, _ in wanted}))
        if (row.record_id, row.version) in wanted and row.state == COMMITTED
    }
    children: dict[str, list[str]] = {}
    for record_id, child_id in db.execute(
        _BATCH[dialect].children, _ids(dialect, {r for r, _ in rows})
    ):
        children.setdefault(record_id, []).append(child_id)
    decisions = decide_row_reads(db, caller, rows.values(), children, now=now)
    bases = {pair: decisions[pair[0]].basis for pair in rows if decisions[pair[0]].allowed}
    keys = _unwrap(db, state, bases, rows, children)
    return rows, children, bases, keys


def _unwrap(
    db: Connection,
    state: ServiceState,
    bases: dict[tuple[str, int], Basis],
    rows: dict[tuple[str, int], Row[*tuple[Any, ...]]],
    children: dict[str, list[str]],
) -> dict[tuple[str, int], tuple[RecordAttributes, bytes]]:
    """Unwrap the granted record keys: one query for the wraps, cached child keys.

    Each record is opened with its first child (ascending id) whose key version still exists
    (decision 0002); an item whose wraps are all unusable is denied like any other.
    """
    if not bases:
        return {}
    wraps: dict[tuple[str, int], list[tuple[str, int, bytes]]] = {}
    dialect = db.dialect.name
    for row in db.execute(_BATCH[dialect].wraps, _ids(dialect, {rid for rid, _ in bases})):
        if (row.record_id, row.version) not in bases:
            continue
        wraps.setdefault((row.record_id, row.version), []).append(
            (row.child_id, row.child_key_version, row.wrapped)
        )
    child_keys = state.child_keys.get(
        db, {(child, ver) for found in wraps.values() for child, ver, _ in found}
    )
    keys = {}
    for pair in bases:
        attributes = RecordAttributes.from_hex(
            record_id=pair[0],
            version=pair[1],
            child_ids=children[pair[0]],
            category=rows[pair].category,
        )
        for child_id, key_version, wrapped in wraps.get(pair, []):
            child_key = child_keys.get((child_id, key_version))
            if child_key is None:
                continue
            try:
                keys[pair] = (
                    attributes,
                    unwrap_record_key(child_key=child_key, attributes=attributes, wrapped=wrapped),
                )
            except KeyUnwrapError:
                continue
            break
    return keys
