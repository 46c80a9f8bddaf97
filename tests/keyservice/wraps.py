"""Many record key wraps for one child, written straight into a key service's database (a
rotation's volume, without uploading blobs), and checks that each still opens."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select

from keyservice.db.tables import child_keys, record_children, records, wrapped_record_keys
from keyservice.ids import new_id
from keyservice.keys import (
    LocalFileRootKeyProvider,
    RootKeyProvider,
    unwrap_child_key,
    unwrap_record_key,
    wrap_record_key,
)
from vault.format import RecordAttributes

CATEGORY = "observation"


def root_of(env: dict[str, str]) -> RootKeyProvider:
    """The local root key file a service's settings name."""
    value = env["CAREVAULT_ROOT_KEY"]
    assert value.startswith("file:"), value
    return LocalFileRootKeyProvider(Path(value.removeprefix("file:")))


def child_key(engine: Engine, root: RootKeyProvider, child_id: str, version: int) -> bytes:
    with engine.connect() as connection:
        wrapped = connection.execute(
            select(child_keys.c.wrapped).where(
                child_keys.c.child_id == child_id, child_keys.c.version == version
            )
        ).scalar_one()
    return unwrap_child_key(root, child_id=child_id, version=version, wrapped=bytes(wrapped))


def add_wraps(
    engine: Engine, root: RootKeyProvider, *, child_id: str, created_by: str, count: int
) -> dict[str, bytes]:
    """``count`` records of ``child_id`` (catalog rows only), wrapped under its active key
    version; each record's key by record id."""
    with engine.connect() as connection:
        version = connection.execute(
            select(child_keys.c.version).where(
                child_keys.c.child_id == child_id, child_keys.c.state == "active"
            )
        ).scalar_one()
    key = child_key(engine, root, child_id, version)
    now = datetime.now(UTC)
    made: dict[str, bytes] = {}
    rows, members, wraps = [], [], []
    for _ in range(count):
        record_id, record_key = new_id(), os.urandom(32)
        attributes = RecordAttributes.from_hex(
            record_id=record_id, version=1, child_ids=[child_id], category=CATEGORY
        )
        made[record_id] = record_key
        rows.append(
            {
                "record_id": record_id,
                "category": CATEGORY,
                "withheld_from_guardians": False,
                "created_by": created_by,
                "created_at": now,
            }
        )
        members.append({"record_id": record_id, "child_id": child_id})
        wraps.append(
            {
                "record_id": record_id,
                "version": 1,
                "child_id": child_id,
                "child_key_version": version,
                "wrapped": wrap_record_key(
                    child_key=key, attributes=attributes, record_key=record_key
                ),
            }
        )
    with engine.begin() as connection:
        connection.execute(insert(records), rows)
        connection.execute(insert(record_children), members)
        connection.execute(insert(wrapped_record_keys), wraps)
    return made


def wraps_of(engine: Engine, child_id: str) -> dict[str, tuple[int, bytes]]:
    """Each record's (key version, wrap) for ``child_id``."""
    with engine.connect() as connection:
        return {
            row.record_id: (row.child_key_version, bytes(row.wrapped))
            for row in connection.execute(
                select(
                    wrapped_record_keys.c.record_id,
                    wrapped_record_keys.c.child_key_version,
                    wrapped_record_keys.c.wrapped,
                ).where(wrapped_record_keys.c.child_id == child_id)
            )
        }


def opened(
    engine: Engine, root: RootKeyProvider, child_id: str, made: dict[str, bytes]
) -> dict[str, bytes]:
    """The record keys the child's current wraps of ``made``'s records open to."""
    wraps = wraps_of(engine, child_id)
    keys = {v: child_key(engine, root, child_id, v) for v in {v for v, _ in wraps.values()}}
    return {
        record_id: unwrap_record_key(
            child_key=keys[wraps[record_id][0]],
            attributes=RecordAttributes.from_hex(
                record_id=record_id, version=1, child_ids=[child_id], category=CATEGORY
            ),
            wrapped=wraps[record_id][1],
        )
        for record_id in made
    }
