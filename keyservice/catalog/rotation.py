"""Key rotation: rewrap rows, never blobs.

- A child key rotation adds a new active version, turns the old active version
  decrypt-only, and rewraps every record key wrapped under an older version of that child's
  key to the new version (decision 0002: one wrap per child). Blob bytes are untouched.
- A root key rotation adds a root key version and rewraps every child key version under it.

Both run in the caller's transaction, so the rows change together with their audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from keyservice.catalog.child_keys import ACTIVE, DECRYPT_ONLY, DESTROYED, create_child_key
from keyservice.db.tables import (
    child_keys,
    record_children,
    records,
    wrapped_record_keys,
)
from keyservice.keys import (
    RootKeyProvider,
    rewrap_child_key,
    unwrap_child_key,
    unwrap_record_key,
    wrap_record_key,
)
from vault.format import RecordAttributes


@dataclass(frozen=True)
class ChildRotation:
    child_id: str
    new_version: int
    rewrapped: int


def rotate_child_key(
    connection: Connection, root: RootKeyProvider, *, child_id: str, now: datetime
) -> ChildRotation:
    """Make a new active key version for the child and move its wraps onto it."""
    latest = connection.execute(
        select(func.max(child_keys.c.version)).where(child_keys.c.child_id == child_id)
    ).scalar_one()
    new_version = int(latest) + 1
    connection.execute(
        update(child_keys)
        .where(child_keys.c.child_id == child_id, child_keys.c.state == ACTIVE)
        .values(state=DECRYPT_ONLY)
    )
    create_child_key(connection, root, child_id=child_id, version=new_version, now=now)
    keys = {
        row.version: unwrap_child_key(
            root, child_id=child_id, version=row.version, wrapped=row.wrapped
        )
        for row in connection.execute(
            select(child_keys.c.version, child_keys.c.wrapped).where(
                child_keys.c.child_id == child_id, child_keys.c.state != DESTROYED
            )
        )
    }
    rows = connection.execute(
        select(
            wrapped_record_keys.c.record_id,
            wrapped_record_keys.c.version,
            wrapped_record_keys.c.child_key_version,
            wrapped_record_keys.c.wrapped,
            records.c.category,
        )
        .join(records, records.c.record_id == wrapped_record_keys.c.record_id)
        .where(
            wrapped_record_keys.c.child_id == child_id,
            wrapped_record_keys.c.child_key_version != new_version,
        )
    ).all()
    children: dict[str, list[str]] = {}
    for record_id, other in connection.execute(
        select(record_children.c.record_id, record_children.c.child_id).where(
            record_children.c.record_id.in_({row.record_id for row in rows})
        )
    ):
        children.setdefault(record_id, []).append(other)
    rewrapped = 0
    for row in rows:
        old_key = keys.get(row.child_key_version)
        if old_key is None:
            # Wrapped under a destroyed version: already shredded for this child.
            continue
        attributes = RecordAttributes.from_hex(
            record_id=row.record_id,
            version=row.version,
            child_ids=children[row.record_id],
            category=row.category,
        )
        record_key = unwrap_record_key(
            child_key=old_key, attributes=attributes, wrapped=row.wrapped
        )
        connection.execute(
            update(wrapped_record_keys)
            .where(
                wrapped_record_keys.c.record_id == row.record_id,
                wrapped_record_keys.c.version == row.version,
                wrapped_record_keys.c.child_id == child_id,
            )
            .values(
                child_key_version=new_version,
                wrapped=wrap_record_key(
                    child_key=keys[new_version], attributes=attributes, record_key=record_key
                ),
            )
        )
        rewrapped += 1
    return ChildRotation(child_id=child_id, new_version=new_version, rewrapped=rewrapped)


def rewrap_child_keys(connection: Connection, root: RootKeyProvider) -> int:
    """Rewrap every surviving child key version under the root key's current version: one
    provider call per version, the child key never out of a KMS."""
    rows = connection.execute(
        select(child_keys.c.child_id, child_keys.c.version, child_keys.c.wrapped).where(
            child_keys.c.state != DESTROYED
        )
    ).all()
    for row in rows:
        connection.execute(
            update(child_keys)
            .where(child_keys.c.child_id == row.child_id, child_keys.c.version == row.version)
            .values(
                wrapped=rewrap_child_key(
                    root, child_id=row.child_id, version=row.version, wrapped=row.wrapped
                )
            )
        )
    return len(rows)
