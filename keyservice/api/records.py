"""Records and their versions: create, amend, commit, list, history, delete (docs/API.md).

The work is the catalog's (``keyservice.catalog.records``, ``versions``, ``listing``); each
route parses, calls one function, answers through its response model, and turns a refusal
into its audited HTTP status here.
"""

from __future__ import annotations

from typing import NoReturn

from fastapi import APIRouter, HTTPException
from sqlalchemy import Connection

from keyservice.api.bounds import Version
from keyservice.api.encoding import b64decode, b64encode
from keyservice.api.record_models import (
    Attributes,
    CommitRequest,
    RecordCreate,
    RecordCreated,
    Upload,
    VersionPublic,
)
from keyservice.api.schemas import Id
from keyservice.audit.record import refuse
from keyservice.caller import Caller
from keyservice.catalog import listing, records, versions
from keyservice.catalog.listing import VersionInfo
from keyservice.catalog.uploads import INLINE_CIPHERTEXT_MAX, INLINE_TOO_LARGE, UploadClaim
from keyservice.catalog.versions import NewVersion, RecordRequest
from keyservice.deps import CurrentCaller, Db, State
from keyservice.errors import (
    CiphertextTooLargeError,
    RecordForbiddenError,
    RecordRefusedError,
    UploadMismatchError,
)
from keyservice.state import ServiceState
from vault.format import CiphertextDigest
from vault.storage import CompletedPart

router = APIRouter()


@router.post(
    "/v1/records", response_model=RecordCreated, response_model_exclude_none=True, status_code=201
)
def create_record(body: RecordCreate, caller: CurrentCaller, db: Db, state: State) -> RecordCreated:
    try:
        created = records.create_record(db, state, caller, _asked(body))
    except (RecordRefusedError, CiphertextTooLargeError) as exc:
        _refused(db, state, caller, exc)
    return _created(created)


@router.post(
    "/v1/records/{record_id}/versions",
    response_model=RecordCreated,
    response_model_exclude_none=True,
    status_code=201,
)
def amend_record(
    record_id: Id, body: RecordCreate, caller: CurrentCaller, db: Db, state: State
) -> RecordCreated:
    """A new version of an existing record, same children, category and flag; any refusal is
    one 404 that does not tell whether the record exists."""
    try:
        created = records.amend_record(db, state, caller, _asked(body), record_id=record_id)
    except (RecordRefusedError, CiphertextTooLargeError) as exc:
        _refused(db, state, caller, exc)
    return _created(created)


@router.post("/v1/records/{record_id}/versions/{version}/commit", status_code=204)
def commit_version(
    record_id: Id,
    version: Version,
    body: CommitRequest,
    caller: CurrentCaller,
    db: Db,
    state: State,
) -> None:
    claim = UploadClaim(
        ciphertext_size=body.ciphertext_size,
        digest=CiphertextDigest(*body.digest()),
        parts=tuple(CompletedPart(p.part_number, p.etag) for p in body.parts or []),
        part_md5s=tuple(b64decode(md5) for md5 in body.part_md5s or []),
    )
    inline = None
    if body.ciphertext is not None:
        # Refused before anything is looked up, like a ciphertext too large at creation.
        # Base64url of the limit, without padding, is at most this long.
        if len(body.ciphertext.rstrip("=")) > -(-INLINE_CIPHERTEXT_MAX * 4 // 3):
            raise HTTPException(status_code=413, detail=INLINE_TOO_LARGE)
        inline = b64decode(body.ciphertext)
    try:
        versions.commit_version(
            db,
            state,
            caller,
            record_id=record_id,
            version=version,
            claim=claim,
            encrypted_metadata=b64decode(body.encrypted_metadata),
            inline=inline,
        )
    except RecordRefusedError as exc:
        _refused(db, state, caller, exc)


@router.get("/v1/children/{child_id}/records", response_model=list[VersionPublic])
def list_child_records(
    child_id: Id, caller: CurrentCaller, db: Db, state: State
) -> list[VersionPublic]:
    """The latest committed version of each record of the child that the caller may read."""
    found = listing.child_records(db, state, caller, child_id=child_id)
    return [_public(version) for version in found]


@router.get("/v1/records/{record_id}/versions", response_model=list[VersionPublic])
def record_history(
    record_id: Id, caller: CurrentCaller, db: Db, state: State
) -> list[VersionPublic]:
    try:
        found = listing.record_history(db, state, caller, record_id=record_id)
    except RecordRefusedError as exc:
        _refused(db, state, caller, exc)
    return [_public(version) for version in found]


@router.delete("/v1/records/{record_id}", status_code=204)
def delete_record(record_id: Id, caller: CurrentCaller, db: Db, state: State) -> None:
    """Crypto-shred, by a manager or DSL who may read the record; any refusal is one 404."""
    try:
        records.delete_record(db, state, caller, record_id=record_id)
    except RecordRefusedError as exc:
        _refused(db, state, caller, exc)


def _asked(body: RecordCreate) -> RecordRequest:
    return RecordRequest(
        child_ids=tuple(body.child_ids),
        category=body.category.value,
        withheld_from_guardians=body.withheld_from_guardians,
        ciphertext_size=body.ciphertext_size,
    )


def _refused(
    db: Connection,
    state: ServiceState,
    caller: Caller,
    error: RecordRefusedError | CiphertextTooLargeError,
) -> NoReturn:
    """Answer a refusal with its status: audited (after the request's work is rolled back),
    except a ciphertext too large, which is refused before anything is looked up."""
    if isinstance(error, CiphertextTooLargeError):
        raise HTTPException(status_code=413, detail=str(error)) from error
    if isinstance(error, RecordForbiddenError):
        status = 403
    elif isinstance(error, UploadMismatchError):
        status = 409
    else:
        status = 404
    refuse(db, state, caller, error.action, error.detail, status=status, message=str(error))


def _created(created: NewVersion) -> RecordCreated:
    upload = created.upload
    return RecordCreated(
        record_id=created.record_id,
        version=created.version,
        attributes=Attributes(
            record_id=created.record_id,
            version=created.version,
            child_ids=list(created.child_ids),
            category=created.category,
        ),
        ephemeral_public=b64encode(created.ephemeral_public),
        sealed_key=b64encode(created.sealed_key),
        upload=Upload(
            method=upload.method,
            url=upload.url,
            part_size=upload.part_size,
            part_urls=list(upload.part_urls) if upload.part_urls is not None else None,
        ),
    )


def _public(version: VersionInfo) -> VersionPublic:
    return VersionPublic(
        record_id=version.record_id,
        version=version.version,
        category=version.category,
        child_ids=list(version.child_ids),
        withheld_from_guardians=version.withheld_from_guardians,
        encrypted_metadata=b64encode(version.encrypted_metadata)
        if version.encrypted_metadata is not None
        else None,
        created_at=version.created_at,
        created_by=version.created_by,
    )
