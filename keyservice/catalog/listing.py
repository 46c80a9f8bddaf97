"""What a caller may see of committed versions: a child's records, and a record's history.

Only committed versions of live records are listed, and only those the policy lets the caller
read; the relationships are loaded once for the whole listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from keyservice.audit.record import audit
from keyservice.caller import Caller
from keyservice.catalog.access import UNAVAILABLE
from keyservice.catalog.context import RecordContext
from keyservice.catalog.facts import decide_row_reads
from keyservice.db.tables import COMMITTED, record_children, record_versions, records
from keyservice.errors import RecordUnavailableError


@dataclass(frozen=True)
class VersionInfo:
    """A committed version as its reader sees it; the metadata is encrypted by the client."""

    record_id: str
    version: int
    category: str
    child_ids: tuple[str, ...]
    withheld_from_guardians: bool
    encrypted_metadata: bytes | None
    created_at: datetime
    created_by: str


def child_records(
    db: Connection, state: RecordContext, caller: Caller, *, child_id: str
) -> list[VersionInfo]:
    """The latest committed version of each record of the child that the caller may read."""
    versions = readable_versions(db, state, caller, record_ids=None, child_id=child_id)
    latest: dict[str, VersionInfo] = {}
    for found in versions:
        latest[found.record_id] = found
    audit(db, state, caller, "records.list", {"child_id": child_id, "count": len(latest)})
    db.commit()
    return list(latest.values())


def record_history(
    db: Connection, state: RecordContext, caller: Caller, *, record_id: str
) -> list[VersionInfo]:
    """Every committed version of the record, if the caller may read it; otherwise the same
    RecordUnavailableError whether it is missing or forbidden."""
    versions = readable_versions(db, state, caller, record_ids=[record_id], child_id=None)
    if not versions:
        raise RecordUnavailableError(
            UNAVAILABLE, action="record.history", detail={"record_id": record_id}
        )
    audit(db, state, caller, "record.history", {"record_id": record_id})
    db.commit()
    return versions


def readable_versions(
    db: Connection,
    state: RecordContext,
    caller: Caller,
    *,
    record_ids: list[str] | None,
    child_id: str | None,
) -> list[VersionInfo]:
    """Committed versions of the chosen records that the policy lets the caller read, oldest
    record first and each record's versions in order."""
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
    return [
        VersionInfo(
            record_id=row.record_id,
            version=row.version,
            category=row.category,
            child_ids=tuple(sorted(children[row.record_id])),
            withheld_from_guardians=row.withheld_from_guardians,
            encrypted_metadata=row.encrypted_metadata,
            created_at=row.created_at,
            created_by=row.created_by,
        )
        for row in rows
        if decisions[row.record_id].allowed
    ]
