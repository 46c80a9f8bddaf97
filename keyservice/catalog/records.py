"""Records: creating one with its first version, adding a version, and crypto-shredding.

Creating or amending a record asks the policy whether the caller may add it for every child;
a new version keeps the record's children, category and flag. Deleting a record
crypto-shreds it: the wrapped key rows go first (and commit), the blobs after.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import Connection, delete, func, insert, select, update

from keyservice.audit.record import audit
from keyservice.caller import Caller
from keyservice.catalog.access import UNAVAILABLE, may_create, may_read, stored_facts
from keyservice.catalog.changes import judge
from keyservice.catalog.context import RecordContext
from keyservice.catalog.versions import NewVersion, RecordRequest, new_version
from keyservice.db.engine import relaxed_durability
from keyservice.db.tables import (
    DELETED,
    record_children,
    record_versions,
    records,
    wrapped_record_keys,
)
from keyservice.errors import RecordForbiddenError, RecordUnavailableError
from keyservice.ids import new_id
from keyservice.policy import RecordFacts
from keyservice.policy.writes import Change
from vault.storage import ObjectNotFound

log = logging.getLogger("keyservice.records")

CREATE_FORBIDDEN = "you may not add records for these children"
AMEND_REFUSED = f"{UNAVAILABLE}: a new version keeps the record's children, category and flags"
DELETE_REFUSED = f"{UNAVAILABLE}: records are deleted by a manager or DSL who may read them"


def create_record(
    db: Connection, state: RecordContext, caller: Caller, asked: RecordRequest
) -> NewVersion:
    """A new record and its pending first version; RecordForbiddenError unless the caller
    may add it for every child."""
    record_id = new_id()
    children = asked.children
    with relaxed_durability(db):
        allowed, basis = may_create(
            db,
            caller,
            RecordFacts(
                record_id=record_id,
                category=asked.category,
                child_ids=children,
                withheld_from_guardians=asked.withheld_from_guardians,
            ),
            now=state.clock(),
        )
        if not allowed:
            raise RecordForbiddenError(
                CREATE_FORBIDDEN,
                action="record.create",
                detail={"record_id": record_id, "child_ids": list(children), "basis": basis},
            )
        db.execute(
            insert(records).values(
                record_id=record_id,
                category=asked.category,
                withheld_from_guardians=asked.withheld_from_guardians,
                created_by=caller.principal_id,
                created_at=state.clock(),
            )
        )
        db.execute(
            insert(record_children), [{"record_id": record_id, "child_id": c} for c in children]
        )
        return new_version(db, state, caller, record_id=record_id, version=1, asked=asked)


def amend_record(
    db: Connection, state: RecordContext, caller: Caller, asked: RecordRequest, *, record_id: str
) -> NewVersion:
    """A new pending version of an existing record, same children, category and flag.

    The policy is asked first, with the record's stored attributes, and every failure
    (missing, forbidden, or attributes that differ from the record) is the same
    RecordUnavailableError: a caller who may not add to the record learns nothing about it,
    not even that it exists.
    """
    with relaxed_durability(db):
        stored = stored_facts(db, record_id)
        if (
            stored is None
            or not may_create(db, caller, stored, now=state.clock())[0]
            or stored.category != asked.category
            or set(stored.child_ids) != set(asked.child_ids)
            or stored.withheld_from_guardians != asked.withheld_from_guardians
        ):
            raise RecordUnavailableError(
                AMEND_REFUSED, action="record.amend", detail={"record_id": record_id}
            )
        latest = db.execute(
            select(func.max(record_versions.c.version)).where(
                record_versions.c.record_id == record_id
            )
        ).scalar_one()
        return new_version(db, state, caller, record_id=record_id, version=latest + 1, asked=asked)


def delete_record(db: Connection, state: RecordContext, caller: Caller, *, record_id: str) -> None:
    """Crypto-shred: the wrapped keys are deleted and committed first, then the blobs.

    Only a manager or DSL who may read the record now deletes it; an admin role alone does
    not (docs/POLICY.md: administration gives no rights over record content). Every refusal,
    missing or forbidden, is the same RecordUnavailableError.
    """
    refused = RecordUnavailableError(
        DELETE_REFUSED, action="record.delete", detail={"record_id": record_id}
    )
    stored = stored_facts(db, record_id)
    if (
        stored is None
        or not judge(db, caller, Change.RECORD_DELETE, child_id=None, now=state.clock()).allowed
        or not may_read(db, caller, stored, now=state.clock())
    ):
        raise refused
    now = state.clock()
    done = db.execute(
        update(records)
        .where(records.c.record_id == record_id, records.c.deleted_at.is_(None))
        .values(deleted_at=now)
    )
    if done.rowcount != 1:
        raise refused
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
