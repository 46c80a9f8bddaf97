"""Record versions: a new one is ``pending`` until its creator commits it (docs/API.md).

A new version has a fresh record key, wrapped once per child under that child's active key
with the record's attributes as associated data, and sealed back to the creator's device. It
is committed by its creator, while the policy still lets them add the record for every
child, with the ciphertext's size and digest (decision 0022), which are checked against the
stored object (``keyservice.catalog.uploads``); only then can it be listed or released.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from keyservice.audit.record import audit
from keyservice.caller import Caller
from keyservice.catalog.access import UNAVAILABLE, may_create, stored_facts
from keyservice.catalog.child_keys import active_versions
from keyservice.catalog.context import RecordContext
from keyservice.catalog.uploads import (
    UploadClaim,
    UploadPlan,
    plan_upload,
    stored_inline,
    stored_object_matches,
)
from keyservice.db.tables import COMMITTED, PENDING, record_versions, wrapped_record_keys
from keyservice.errors import (
    CiphertextTooLargeError,
    RecordUnavailableError,
    UploadMismatchError,
)
from keyservice.keys import generate_key, wrap_record_key
from vault.format import RecordAttributes
from vault.sealing import seal_batch
from vault.signing import sealing_context
from vault.storage import new_object_name

NOT_COMMITTABLE = (
    f"{UNAVAILABLE}: only a pending version's creator commits it, while they may still add "
    "records for every child of the record"
)
MISMATCH = (
    "the stored object does not match the claimed size and digest; upload it again, then commit"
)


@dataclass(frozen=True)
class RecordRequest:
    """A record, or a new version of one, as its author asks for it."""

    child_ids: tuple[str, ...]
    category: str
    withheld_from_guardians: bool
    ciphertext_size: int

    @property
    def children(self) -> tuple[str, ...]:
        """The record's children: sorted, each once."""
        return tuple(sorted(set(self.child_ids)))


@dataclass(frozen=True)
class NewVersion:
    """A pending version: its attributes, its record key sealed to the creator's device, and
    where to upload its ciphertext."""

    record_id: str
    version: int
    child_ids: tuple[str, ...]
    category: str
    ephemeral_public: bytes
    sealed_key: bytes
    upload: UploadPlan


def new_version(
    db: Connection,
    state: RecordContext,
    caller: Caller,
    *,
    record_id: str,
    version: int,
    asked: RecordRequest,
) -> NewVersion:
    """Wrap a fresh record key per child, store the pending version, seal the key back.

    Called inside ``relaxed_durability``: the commit does not wait for the disk. A pending
    version lost in a power cut, with its entry, protected nothing (its key wraps no
    committed ciphertext, and its upload's commit then fails); the version's commit waits for
    the disk, and with it everything written before (docs/decisions/0003).
    """
    now = state.clock()
    if asked.ciphertext_size > state.settings.max_upload_bytes:
        raise CiphertextTooLargeError(
            f"the ciphertext is larger than {state.settings.max_upload_bytes} bytes, the limit "
            "CAREVAULT_MAX_UPLOAD_BYTES sets; an operator can raise it"
        )
    child_ids, category = asked.children, asked.category
    versions = active_versions(db, child_ids)
    child_keys = state.child_keys.get(db, versions.items())
    attributes = RecordAttributes.from_hex(
        record_id=record_id, version=version, child_ids=list(child_ids), category=category
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
            ciphertext_size=asked.ciphertext_size,
            created_by=caller.principal_id,
            created_at=now,
        )
    )
    upload = plan_upload(
        state.blobs, state.settings, object_name=object_name, size=asked.ciphertext_size
    )
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
            "child_ids": list(child_ids),
            "category": category,
        },
    )
    db.commit()
    return NewVersion(
        record_id=record_id,
        version=version,
        child_ids=child_ids,
        category=category,
        ephemeral_public=sealed.ephemeral_public,
        sealed_key=sealed.sealed[0],
        upload=upload,
    )


def commit_version(
    db: Connection,
    state: RecordContext,
    caller: Caller,
    *,
    record_id: str,
    version: int,
    claim: UploadClaim,
    encrypted_metadata: bytes,
    inline: bytes | None = None,
) -> None:
    """Make a pending version visible, after the checks in this order: it is the caller's
    and pending, the caller may still add the record, the stored object is the claimed one.
    With ``inline`` (a small single upload's ciphertext, carried by the commit; decision
    0030) the last check is of those bytes, which are then stored: nothing is read back.

    Every refusal but a mismatching object is the same RecordUnavailableError: a version that
    is missing, not pending, not the caller's, or of a record the caller may no longer add to.
    """
    refused = RecordUnavailableError(
        NOT_COMMITTABLE,
        action="record.commit",
        detail={"record_id": record_id, "version": version},
    )
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
        raise refused
    # The author's right to add the record is asked again: an assignment that ended since
    # the version was created ends the right to make it visible.
    stored = stored_facts(db, record_id)
    if stored is None or not may_create(db, caller, stored, now=state.clock())[0]:
        raise refused
    if inline is not None:
        matches = stored_inline(
            state.blobs,
            claim,
            inline,
            object_name=row.object_name,
            upload_id=row.upload_id,
            planned_size=row.ciphertext_size,
        )
    else:
        matches = stored_object_matches(
            state.blobs,
            claim,
            object_name=row.object_name,
            upload_id=row.upload_id,
            planned_size=row.ciphertext_size,
        )
    if not matches:
        raise UploadMismatchError(
            MISMATCH, action="record.commit", detail={"record_id": record_id, "version": version}
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
            # The column keeps its first name; it holds the digest named by the next one.
            ciphertext_sha256=claim.digest.value,
            ciphertext_digest_alg=claim.digest.alg,
            encrypted_metadata=encrypted_metadata,
            committed_at=state.clock(),
        )
    )
    if committed.rowcount != 1:
        raise refused
    audit(db, state, caller, "record.commit", {"record_id": record_id, "version": version})
    db.commit()
