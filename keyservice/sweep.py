"""The sweep (``carevault-keyservice sweep``): what abandoned and deleted record versions left
in the blob store, and what a crash left there.

``claim_abandoned`` removes the versions still pending since before the cut-off, with their
wrapped keys, in the caller's transaction, and notes their objects in ``upload_leftovers``.
One conditional DELETE decides, so a commit racing it either lands first (the version is no
longer pending and is spared) or finds the version gone.

``clean_store`` then, after that commit:

- deletes the noted objects and aborts their multipart uploads, again at every sweep until
  their upload URLs have expired: a presigned S3 URL cannot be revoked, so an upload through
  it after its version was removed is deleted by the next sweep
  (docs/decisions/0010-upload-bounds.md);
- does the same for the objects of deleted (shredded) versions;
- aborts every other multipart upload started before the cut-off that no pending version
  owns (a version removed by an older sweep, or a crash between starting an upload and
  recording it);
- removes the store's temporary files last written before the cut-off.

Deleting an absent object, or aborting an upload that is gone, is done. What fails is kept
and tried again by the next sweep, and only that is reported as left to retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, update

from keyservice.catalog.uploads import UPLOAD_URL_S
from keyservice.db.tables import (
    DELETED,
    PENDING,
    record_versions,
    upload_leftovers,
    wrapped_record_keys,
)
from vault.storage import BlobStore, ObjectNotFound, StorageError

# What a store's failure looks like: its own errors, and the local store's file errors.
_FAILURES = (StorageError, OSError)


@dataclass
class SweepReport:
    """What a sweep removed, and what it could not."""

    abandoned: int = 0
    # Objects of removed or deleted versions deleted, or found already gone.
    objects: int = 0
    uploads_aborted: int = 0
    temporaries: int = 0
    failures: list[str] = field(default_factory=list)

    def failed(self, what: str, exc: BaseException) -> None:
        self.failures.append(f"{what}: {type(exc).__name__}")

    def summary(self) -> str:
        text = (
            f"removed {self.abandoned} abandoned uploads; deleted {self.objects} blobs of "
            f"removed or deleted versions (or found them gone); aborted {self.uploads_aborted} "
            f"unfinished multipart uploads; removed {self.temporaries} temporary files"
        )
        if self.failures:
            text += f"; {len(self.failures)} to retry at the next sweep"
        return text


def claim_abandoned(connection: Connection, *, cutoff: datetime) -> int:
    """Remove the versions pending since before ``cutoff`` and their keys; note their objects
    for ``clean_store``. Runs in the caller's transaction; returns how many."""
    stale = connection.execute(
        delete(record_versions)
        .where(record_versions.c.state == PENDING, record_versions.c.created_at < cutoff)
        .returning(
            record_versions.c.record_id,
            record_versions.c.version,
            record_versions.c.object_name,
            record_versions.c.upload_id,
            record_versions.c.created_at,
        )
    ).all()
    for row in stale:
        connection.execute(
            delete(wrapped_record_keys).where(
                wrapped_record_keys.c.record_id == row.record_id,
                wrapped_record_keys.c.version == row.version,
            )
        )
    if stale:
        connection.execute(
            insert(upload_leftovers),
            [
                {
                    "object_name": row.object_name,
                    "upload_id": row.upload_id,
                    "urls_expire_at": row.created_at + timedelta(seconds=UPLOAD_URL_S),
                }
                for row in stale
            ],
        )
    return len(stale)


def clean_store(
    engine: Engine, blobs: BlobStore, *, cutoff: datetime, now: datetime
) -> SweepReport:
    """Remove from ``blobs`` what removed and deleted versions and crashes left behind."""
    report = SweepReport()
    with engine.connect() as connection:
        leftovers = connection.execute(select(upload_leftovers)).all()
        deleted = connection.execute(
            select(record_versions.c.object_name, record_versions.c.upload_id).where(
                record_versions.c.state == DELETED
            )
        ).all()
        connection.rollback()

    forgotten, aborted_leftovers, aborted_versions = [], [], []
    for leftover in leftovers:
        if _remove(blobs, leftover.object_name, leftover.upload_id, report):
            if leftover.urls_expire_at <= now:
                forgotten.append(leftover.object_name)
            elif leftover.upload_id is not None:
                aborted_leftovers.append(leftover.object_name)
    for version in deleted:
        removed = _remove(blobs, version.object_name, version.upload_id, report)
        if removed and version.upload_id is not None:
            aborted_versions.append(version.object_name)
    with engine.connect() as connection:
        connection.execute(
            delete(upload_leftovers).where(upload_leftovers.c.object_name.in_(forgotten))
        )
        connection.execute(
            update(upload_leftovers)
            .where(upload_leftovers.c.object_name.in_(aborted_leftovers))
            .values(upload_id=None)
        )
        connection.execute(
            update(record_versions)
            .where(
                record_versions.c.object_name.in_(aborted_versions),
                record_versions.c.state == DELETED,
            )
            .values(upload_id=None)
        )
        connection.commit()

    _abort_unowned_uploads(engine, blobs, cutoff=cutoff, report=report)
    try:
        report.temporaries = blobs.remove_stale_temporaries(modified_before=cutoff)
    except _FAILURES as exc:
        report.failed("could not remove temporary files", exc)
    return report


def _remove(blobs: BlobStore, name: str, upload_id: str | None, report: SweepReport) -> bool:
    """Abort the object's upload if it has one, then delete the object; False if that failed."""
    try:
        if upload_id is not None:
            _abort(blobs, name, upload_id, report)
        blobs.delete(name)
    except _FAILURES as exc:
        report.failed(f"could not delete blob {name}", exc)
        return False
    report.objects += 1
    return True


def _abort_unowned_uploads(
    engine: Engine, blobs: BlobStore, *, cutoff: datetime, report: SweepReport
) -> None:
    """Abort the uploads started before ``cutoff`` that no pending version owns."""
    try:
        listed = list(blobs.list_uploads(started_before=cutoff))
    except _FAILURES as exc:
        report.failed("could not list unfinished uploads", exc)
        return
    # Read after the listing: a version created meanwhile started its upload after it.
    with engine.connect() as connection:
        owned = set(
            connection.execute(
                select(record_versions.c.upload_id).where(
                    record_versions.c.state == PENDING, record_versions.c.upload_id.is_not(None)
                )
            ).scalars()
        )
        connection.rollback()
    for upload in listed:
        if upload.upload_id in owned:
            continue
        try:
            _abort(blobs, upload.name, upload.upload_id, report)
        except _FAILURES as exc:
            report.failed(f"could not abort an upload of blob {upload.name}", exc)


def _abort(blobs: BlobStore, name: str, upload_id: str, report: SweepReport) -> None:
    try:
        blobs.abort_multipart(name, upload_id=upload_id)
    except ObjectNotFound:
        return
    report.uploads_aborted += 1
