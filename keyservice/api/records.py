"""Records and their versions: create, amend, commit, list, history, delete (docs/API.md).

A new version is ``pending`` until its creator, while the policy still lets them add the
record for every child, commits it with the ciphertext's size and SHA-256, which the service
checks against the stored object (on S3, when the client also names the MD5s the store keeps
as the ETag, through those: docs/decisions/0008); only then can it be listed or released.
Deleting a record crypto-shreds it: the wrapped key rows go first (and commit), the blobs
after.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from typing import NoReturn

from fastapi import APIRouter, HTTPException
from sqlalchemy import Connection, delete, func, insert, select, update

from keyservice.api.bounds import Version
from keyservice.api.encoding import b64decode, b64encode
from keyservice.api.schemas import (
    Attributes,
    CommitRequest,
    Id,
    RecordCreate,
    RecordCreated,
    Upload,
    VersionPublic,
)
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog.child_keys import active_versions
from keyservice.catalog.facts import decide_for, decide_row_reads, load_relationships
from keyservice.db.engine import relaxed_durability
from keyservice.db.tables import (
    COMMITTED,
    DELETED,
    PENDING,
    record_children,
    record_versions,
    records,
    wrapped_record_keys,
)
from keyservice.deps import CurrentCaller, Db, State
from keyservice.ids import new_id
from keyservice.keys import generate_key, wrap_record_key
from keyservice.policy import Action, RecordFacts
from keyservice.state import ServiceState
from vault.format import RecordAttributes
from vault.sealing import seal_batch
from vault.signing import sealing_context
from vault.storage import (
    MAX_PARTS,
    CompletedPart,
    ObjectNotFound,
    StorageError,
    new_object_name,
)

router = APIRouter()
log = logging.getLogger("keyservice.records")

UNAVAILABLE = "no such record, or not one you may use"
UPLOAD_URL_S = 3600
DELETE_REFUSED = f"{UNAVAILABLE}: records are deleted by a manager or DSL who may read them"


def attributes_of(
    *, record_id: str, version: int, child_ids: list[str] | tuple[str, ...], category: str
) -> Attributes:
    return Attributes(
        record_id=record_id, version=version, child_ids=sorted(child_ids), category=category
    )


def _new_version(
    db: Connection,
    state: ServiceState,
    caller: Caller,
    *,
    record_id: str,
    version: int,
    body: RecordCreate,
) -> RecordCreated:
    """Wrap a fresh record key per child, store the pending version, seal the key back.

    Called inside ``relaxed_durability``: the commit does not wait for the disk. A pending
    version lost in a power cut, with its entry, protected nothing (its key wraps no
    committed ciphertext, and its upload's commit then fails); the version's commit waits for
    the disk, and with it everything written before (docs/decisions/0003).
    """
    now = state.clock()
    if body.ciphertext_size > state.settings.max_upload_bytes:
        raise HTTPException(status_code=413, detail="the ciphertext is larger than allowed")
    child_ids = sorted(set(body.child_ids))
    versions = active_versions(db, child_ids)
    child_keys = state.child_keys.get(db, versions.items())
    attributes = RecordAttributes.from_hex(
        record_id=record_id, version=version, child_ids=child_ids, category=body.category.value
    )
    record_key = generate_key()
    db.execute(
        insert(wrapped_record_keys),
        [
            {
                "record_id": record_id,
                "version": version,
                "child_id": child_id,
                "child_key_version": versions[child_id],
                "wrapped": wrap_record_key(
                    child_key=child_keys[(child_id, versions[child_id])],
                    attributes=attributes,
                    record_key=record_key,
                ),
            }
            for child_id in child_ids
        ],
    )
    object_name = new_object_name()
    db.execute(
        insert(record_versions).values(
            record_id=record_id,
            version=version,
            state=PENDING,
            object_name=object_name,
            ciphertext_size=body.ciphertext_size,
            created_by=caller.principal_id,
            created_at=now,
        )
    )
    upload = _plan_upload(state, object_name, body.ciphertext_size)
    if upload.upload_id is not None:
        db.execute(
            update(record_versions)
            .where(record_versions.c.record_id == record_id, record_versions.c.version == version)
            .values(upload_id=upload.upload_id)
        )
    sealed = seal_batch(
        recipient_public=caller.receiving_key,
        context=sealing_context(caller.device_id, caller.nonce),
        items=[(attributes.canonical(), record_key)],
    )
    audit(
        db,
        state,
        caller,
        "record.create",
        {
            "record_id": record_id,
            "version": version,
            "child_ids": child_ids,
            "category": body.category.value,
        },
    )
    db.commit()
    return RecordCreated(
        record_id=record_id,
        version=version,
        attributes=attributes_of(
            record_id=record_id,
            version=version,
            child_ids=child_ids,
            category=body.category.value,
        ),
        ephemeral_public=b64encode(sealed.ephemeral_public),
        sealed_key=b64encode(sealed.sealed[0]),
        upload=upload,
    )


def _plan_upload(state: ServiceState, object_name: str, size: int) -> Upload:
    """One PUT up to the multipart threshold; beyond it, parts with their own URLs."""
    settings = state.settings
    if size <= settings.multipart_threshold_bytes:
        return Upload(
            method="single",
            url=state.blobs.presign_put(object_name, size=size, expires_s=UPLOAD_URL_S),
        )
    part_size = max(settings.part_size_bytes, -(-size // MAX_PARTS))
    planned = state.blobs.start_multipart(
        object_name, size=size, part_size=part_size, expires_s=UPLOAD_URL_S
    )
    return Upload(
        method="multipart",
        part_size=planned.part_size,
        part_urls=list(planned.part_urls),
        upload_id=planned.upload_id,
    )


def _may_create(
    db: Connection, state: ServiceState, caller: Caller, record: RecordFacts
) -> tuple[bool, str]:
    """Policy CREATE for every child of ``record``, whose children all have a key; and the
    decision's basis. Unknown children are denied like forbidden ones."""
    relationships = load_relationships(
        db, principal_id=caller.principal_id, kind=caller.kind, child_ids=record.child_ids
    )
    decision = decide_for(
        caller, relationships, action=Action.CREATE, record=record, now=state.clock()
    )
    allowed = decision.allowed and len(active_versions(db, record.child_ids)) == len(
        record.child_ids
    )
    return allowed, decision.basis.value


def _may_read(db: Connection, state: ServiceState, caller: Caller, record: RecordFacts) -> bool:
    relationships = load_relationships(
        db, principal_id=caller.principal_id, kind=caller.kind, child_ids=record.child_ids
    )
    return decide_for(
        caller, relationships, action=Action.READ, record=record, now=state.clock()
    ).allowed


def _check_create(
    db: Connection, state: ServiceState, caller: Caller, body: RecordCreate, record_id: str
) -> None:
    """A new record: refuse (403) unless the caller may add it for every child."""
    child_ids = tuple(sorted(set(body.child_ids)))
    allowed, basis = _may_create(
        db,
        state,
        caller,
        RecordFacts(
            record_id=record_id,
            category=body.category.value,
            child_ids=child_ids,
            withheld_from_guardians=body.withheld_from_guardians,
        ),
    )
    if not allowed:
        refuse(
            db,
            state,
            caller,
            "record.create",
            {"record_id": record_id, "child_ids": list(child_ids), "basis": basis},
            status=403,
            message="you may not add records for these children",
        )


@router.post(
    "/v1/records", response_model=RecordCreated, response_model_exclude_none=True, status_code=201
)
def create_record(body: RecordCreate, caller: CurrentCaller, db: Db, state: State) -> RecordCreated:
    record_id = new_id()
    with relaxed_durability(db):
        _check_create(db, state, caller, body, record_id=record_id)
        db.execute(
            insert(records).values(
                record_id=record_id,
                category=body.category.value,
                withheld_from_guardians=body.withheld_from_guardians,
                created_by=caller.principal_id,
                created_at=state.clock(),
            )
        )
        db.execute(
            insert(record_children),
            [{"record_id": record_id, "child_id": c} for c in sorted(set(body.child_ids))],
        )
        return _new_version(db, state, caller, record_id=record_id, version=1, body=body)


def _stored_facts(db: Connection, record_id: str) -> RecordFacts | None:
    """The policy's view of a live (not deleted) record, or None."""
    row = db.execute(
        select(records.c.category, records.c.withheld_from_guardians).where(
            records.c.record_id == record_id, records.c.deleted_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    child_ids = db.execute(
        select(record_children.c.child_id)
        .where(record_children.c.record_id == record_id)
        .order_by(record_children.c.child_id)
    ).scalars()
    return RecordFacts(
        record_id=record_id,
        category=row.category,
        child_ids=tuple(child_ids),
        withheld_from_guardians=row.withheld_from_guardians,
    )


@router.post(
    "/v1/records/{record_id}/versions",
    response_model=RecordCreated,
    response_model_exclude_none=True,
    status_code=201,
)
def amend_record(
    record_id: Id, body: RecordCreate, caller: CurrentCaller, db: Db, state: State
) -> RecordCreated:
    """A new version of an existing record, same children, category and flag.

    The policy is asked first, with the record's stored attributes, and every failure
    (missing, forbidden, or a body that differs from the record) is the same 404: a caller
    who may not add to the record learns nothing about it, not even that it exists.
    """
    with relaxed_durability(db):
        stored = _stored_facts(db, record_id)
        if (
            stored is None
            or not _may_create(db, state, caller, stored)[0]
            or stored.category != body.category.value
            or set(stored.child_ids) != set(body.child_ids)
            or stored.withheld_from_guardians != body.withheld_from_guardians
        ):
            refuse(
                db,
                state,
                caller,
                "record.amend",
                {"record_id": record_id},
                status=404,
                message=f"{UNAVAILABLE}: a new version keeps the record's children, category "
                "and flags",
            )
        latest = db.execute(
            select(func.max(record_versions.c.version)).where(
                record_versions.c.record_id == record_id
            )
        ).scalar_one()
        return _new_version(db, state, caller, record_id=record_id, version=latest + 1, body=body)


@router.post("/v1/records/{record_id}/versions/{version}/commit", status_code=204)
def commit_version(
    record_id: Id,
    version: Version,
    body: CommitRequest,
    caller: CurrentCaller,
    db: Db,
    state: State,
) -> None:
    row = db.execute(
        select(
            record_versions.c.object_name,
            record_versions.c.ciphertext_size,
            record_versions.c.upload_id,
        ).where(
            record_versions.c.record_id == record_id,
            record_versions.c.version == version,
            record_versions.c.state == PENDING,
            record_versions.c.created_by == caller.principal_id,
        )
    ).first()
    if row is None:
        _refuse_commit(db, state, caller, record_id=record_id, version=version)
    # The author's right to add the record is asked again: an assignment that ended since
    # the version was created ends the right to make it visible.
    stored = _stored_facts(db, record_id)
    if stored is None or not _may_create(db, state, caller, stored)[0]:
        _refuse_commit(db, state, caller, record_id=record_id, version=version)
    claimed_digest = b64decode(body.ciphertext_sha256)
    if not _stored_object_matches(
        state,
        body,
        object_name=row.object_name,
        upload_id=row.upload_id,
        claimed_digest=claimed_digest,
        planned_size=row.ciphertext_size,
    ):
        _refuse_commit(
            db,
            state,
            caller,
            record_id=record_id,
            version=version,
            status=409,
            message="the stored object does not match the claimed size and SHA-256; "
            "upload it again, then commit",
        )
    # Still pending: of two commits of one version racing (on PostgreSQL the read above does
    # not lock the row), only the first makes it visible with its claim.
    committed = db.execute(
        update(record_versions)
        .where(
            record_versions.c.record_id == record_id,
            record_versions.c.version == version,
            record_versions.c.state == PENDING,
        )
        .values(
            state=COMMITTED,
            # The upload was completed; nothing is left for a sweep to abort.
            upload_id=None,
            ciphertext_sha256=claimed_digest,
            encrypted_metadata=b64decode(body.encrypted_metadata),
            committed_at=state.clock(),
        )
    )
    if committed.rowcount != 1:
        _refuse_commit(db, state, caller, record_id=record_id, version=version)
    audit(db, state, caller, "record.commit", {"record_id": record_id, "version": version})
    db.commit()


def _refuse_commit(
    db: Connection,
    state: ServiceState,
    caller: Caller,
    *,
    record_id: str,
    version: int,
    status: int = 404,
    message: str = f"{UNAVAILABLE}: only a pending version's creator commits it, while they "
    "may still add records for every child of the record",
) -> NoReturn:
    """Audit and raise a refused commit: by default the 404 of a version that is missing,
    not pending, not the caller's, or of a record the caller may no longer add to."""
    refuse(
        db,
        state,
        caller,
        "record.commit",
        {"record_id": record_id, "version": version},
        status=status,
        message=message,
    )


def _stored_object_matches(
    state: ServiceState,
    body: CommitRequest,
    *,
    object_name: str,
    upload_id: str | None,
    claimed_digest: bytes,
    planned_size: int,
) -> bool:
    """Complete a multipart upload if one is open, then check the stored object against the
    claim: its size and the store's MD5s of what it received (docs/decisions/0008), or else
    its size and SHA-256, read back (docs/decisions/0006-commit-digest-check.md)."""
    if body.ciphertext_size != planned_size:
        return False
    try:
        if upload_id is not None:
            state.blobs.complete_multipart(
                object_name,
                upload_id=upload_id,
                parts=[
                    CompletedPart(part_number=p.part_number, etag=p.etag) for p in body.parts or []
                ],
            )
        # The store's own MD5s of what it received, when it keeps them (S3's ETag), are
        # checked without reading the object; otherwise, or if they differ, it is read.
        if body.part_md5s and _md5s_match(
            state, object_name, body, multipart=upload_id is not None
        ):
            return True
        digest = state.blobs.sha256_if_size(object_name, size=body.ciphertext_size)
    except StorageError:
        log.warning("commit: the stored object could not be checked", exc_info=True)
        return False
    return digest is not None and hmac.compare_digest(digest, claimed_digest)


def _md5s_match(
    state: ServiceState, object_name: str, body: CommitRequest, *, multipart: bool
) -> bool:
    """The store's check of the client's MD5s; a store that cannot answer (a failed HEAD)
    leaves the decision to the read-back rather than refusing the commit."""
    try:
        return state.blobs.md5s_match(
            object_name,
            size=body.ciphertext_size,
            part_md5s=[b64decode(md5) for md5 in body.part_md5s or []],
            multipart=multipart,
        )
    except ObjectNotFound:
        raise
    except StorageError:
        log.warning("commit: the store's MD5s could not be checked; reading the object")
        return False


def _readable_versions(
    db: Connection,
    state: ServiceState,
    caller: Caller,
    *,
    record_ids: list[str] | None,
    child_id: str | None,
) -> list[VersionPublic]:
    """Committed versions of the chosen records that the policy lets the caller read."""
    query = (
        select(
            records.c.record_id,
            records.c.category,
            records.c.withheld_from_guardians,
            record_versions.c.version,
            record_versions.c.encrypted_metadata,
            record_versions.c.created_at,
            record_versions.c.created_by,
        )
        .join(record_versions, record_versions.c.record_id == records.c.record_id)
        .where(records.c.deleted_at.is_(None), record_versions.c.state == COMMITTED)
        .order_by(records.c.created_at, records.c.record_id, record_versions.c.version)
    )
    if child_id is not None:
        query = query.where(
            records.c.record_id.in_(
                select(record_children.c.record_id).where(record_children.c.child_id == child_id)
            )
        )
    if record_ids is not None:
        query = query.where(records.c.record_id.in_(record_ids))
    rows = db.execute(query).all()
    children: dict[str, list[str]] = {}
    for rid, cid in db.execute(
        select(record_children.c.record_id, record_children.c.child_id).where(
            record_children.c.record_id.in_({row.record_id for row in rows})
        )
    ):
        children.setdefault(rid, []).append(cid)
    decisions = decide_row_reads(db, caller, rows, children, now=state.clock())
    found = []
    for row in rows:
        if decisions[row.record_id].allowed:
            found.append(
                VersionPublic(
                    record_id=row.record_id,
                    version=row.version,
                    category=row.category,
                    child_ids=sorted(children[row.record_id]),
                    withheld_from_guardians=row.withheld_from_guardians,
                    encrypted_metadata=b64encode(row.encrypted_metadata)
                    if row.encrypted_metadata is not None
                    else None,
                    created_at=row.created_at,
                    created_by=row.created_by,
                )
            )
    return found


@router.get("/v1/children/{child_id}/records", response_model=list[VersionPublic])
def list_child_records(
    child_id: Id, caller: CurrentCaller, db: Db, state: State
) -> list[VersionPublic]:
    """The latest committed version of each record of the child that the caller may read."""
    versions = _readable_versions(db, state, caller, record_ids=None, child_id=child_id)
    latest: dict[str, VersionPublic] = {}
    for found in versions:
        latest[found.record_id] = found
    audit(db, state, caller, "records.list", {"child_id": child_id, "count": len(latest)})
    db.commit()
    return list(latest.values())


@router.get("/v1/records/{record_id}/versions", response_model=list[VersionPublic])
def record_history(
    record_id: Id, caller: CurrentCaller, db: Db, state: State
) -> list[VersionPublic]:
    versions = _readable_versions(db, state, caller, record_ids=[record_id], child_id=None)
    if not versions:
        refuse(
            db,
            state,
            caller,
            "record.history",
            {"record_id": record_id},
            status=404,
            message=UNAVAILABLE,
        )
    audit(db, state, caller, "record.history", {"record_id": record_id})
    db.commit()
    return versions


@router.delete("/v1/records/{record_id}", status_code=204)
def delete_record(record_id: Id, caller: CurrentCaller, db: Db, state: State) -> None:
    """Crypto-shred: the wrapped keys are deleted and committed first, then the blobs.

    Only a manager or DSL who may read the record now deletes it; an admin role alone does
    not (docs/POLICY.md: administration gives no rights over record content). Every refusal,
    missing or forbidden, is the same audited 404.
    """
    stored = _stored_facts(db, record_id)
    if (
        stored is None
        or not caller.has_role("manager", "dsl")
        or not _may_read(db, state, caller, stored)
    ):
        refuse(
            db,
            state,
            caller,
            "record.delete",
            {"record_id": record_id},
            status=404,
            message=DELETE_REFUSED,
        )
    now = state.clock()
    done = db.execute(
        update(records)
        .where(records.c.record_id == record_id, records.c.deleted_at.is_(None))
        .values(deleted_at=now)
    )
    if done.rowcount != 1:
        refuse(
            db,
            state,
            caller,
            "record.delete",
            {"record_id": record_id},
            status=404,
            message=DELETE_REFUSED,
        )
    stored_objects = db.execute(
        select(record_versions.c.object_name, record_versions.c.upload_id).where(
            record_versions.c.record_id == record_id
        )
    ).all()
    db.execute(delete(wrapped_record_keys).where(wrapped_record_keys.c.record_id == record_id))
    db.execute(
        update(record_versions)
        .where(record_versions.c.record_id == record_id)
        .values(state=DELETED, encrypted_metadata=None)
    )
    audit(
        db,
        state,
        caller,
        "record.delete",
        {"record_id": record_id, "versions": len(stored_objects)},
    )
    db.commit()
    for name, upload_id in stored_objects:
        try:
            if upload_id is not None:
                with contextlib.suppress(ObjectNotFound):
                    state.blobs.abort_multipart(name, upload_id=upload_id)
            state.blobs.delete(name)
        except Exception:
            # The key is already gone, so a left-over blob is unreadable; the sweeper retries.
            log.exception("blob delete failed after crypto-shred; the sweeper will retry")
