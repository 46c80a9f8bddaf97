"""Per-child keys: created with the child, unwrapped from the root key on demand.

Root-unwrapped child keys are kept in memory for ``ttl`` seconds so that a release does not
pay a root-key unwrap (with a KMS-backed provider, a KMS round trip) per child per
request. The trade-off: a destroyed or rotated child key can still be used by this process
for up to ``ttl`` seconds after the change, and the keys sit in this process's memory
meanwhile. Rotation and destruction on this instance clear the entry at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import Connection, insert, select

from keyservice.db.tables import child_keys, children
from keyservice.keys import RootKeyProvider, generate_child_key, unwrap_child_key

ACTIVE = "active"
DECRYPT_ONLY = "decrypt-only"
DESTROYED = "destroyed"


def create_child_key(
    connection: Connection, root: RootKeyProvider, *, child_id: str, version: int, now: datetime
) -> bytes:
    """Store a fresh active child key version, generated and wrapped by the root key in one
    provider call; the key itself, for a rotation that wraps record keys under it next."""
    child_key, wrapped = generate_child_key(root, child_id=child_id, version=version)
    connection.execute(
        insert(child_keys).values(
            child_id=child_id,
            version=version,
            state=ACTIVE,
            wrapped=wrapped,
            created_at=now,
            root_provider=root.identity(),
            root_version=root.current_version(),
        )
    )
    return child_key


class ChildKeyCache:
    """Unwrapped child keys by (child, version), each for at most ``ttl`` seconds."""

    def __init__(
        self, root: RootKeyProvider, *, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._root = root
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], tuple[float, bytes]] = {}

    def forget(self, child_id: str) -> None:
        with self._lock:
            for entry in [k for k in self._entries if k[0] == child_id]:
                del self._entries[entry]

    def get(
        self, connection: Connection, wanted: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        """The keys of the (child, version) pairs whose version is not destroyed."""
        now = self._clock()
        found: dict[tuple[str, int], bytes] = {}
        missing: set[tuple[str, int]] = set()
        with self._lock:
            for pair in set(wanted):
                cached = self._entries.get(pair)
                if cached is not None and cached[0] > now:
                    found[pair] = cached[1]
                else:
                    missing.add(pair)
        if missing:
            loaded = self._load(connection, missing)
            with self._lock:
                for pair, key in loaded.items():
                    if self._ttl > 0:
                        self._entries[pair] = (now + self._ttl, key)
            found.update(loaded)
        return found

    def _load(
        self, connection: Connection, pairs: set[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        rows = connection.execute(
            select(child_keys.c.child_id, child_keys.c.version, child_keys.c.wrapped).where(
                child_keys.c.child_id.in_({child for child, _ in pairs}),
                child_keys.c.state != DESTROYED,
            )
        ).all()
        return {
            (row.child_id, row.version): unwrap_child_key(
                self._root, child_id=row.child_id, version=row.version, wrapped=row.wrapped
            )
            for row in rows
            if (row.child_id, row.version) in pairs
        }


def active_versions(connection: Connection, child_ids: Iterable[str]) -> dict[str, int]:
    """Each child's active key version, held until the caller's transaction ends: a record
    wrapped under it commits before a rotation of the child switches versions, so the
    rotation's job finds and moves the wrap.

    On PostgreSQL the children's rows are locked ``FOR KEY SHARE`` first (record creations do
    not wait for one another, nor for ordinary updates of the child); a rotation's start
    locks the row ``FOR UPDATE`` (``lock_for_rotation``) and so waits for creations in
    flight, and a creation arriving meanwhile waits for the switch to commit and reads the
    new version. Without it a creation that read the old version, then committed after the
    job's last batch, left its wrap on the old, decrypt-only version of a job reported done.
    The child's row, not its key version's: the switch turns that row decrypt-only and adds
    a new one, which a statement waiting on the old row would not see. SQLite: every
    transaction holds the one write lock from its start (``BEGIN IMMEDIATE``)."""
    wanted = set(child_ids)
    connection.execute(
        select(children.c.child_id)
        .where(children.c.child_id.in_(wanted))
        .with_for_update(read=True, key_share=True)
    )
    rows = connection.execute(
        select(child_keys.c.child_id, child_keys.c.version).where(
            child_keys.c.child_id.in_(wanted), child_keys.c.state == ACTIVE
        )
    ).all()
    return {row.child_id: row.version for row in rows}


def lock_for_rotation(connection: Connection, child_id: str) -> None:
    """Hold the child's row against record creations until the caller's transaction ends:
    taken before its active key version is switched (see ``active_versions``)."""
    connection.execute(
        select(children.c.child_id).where(children.c.child_id == child_id).with_for_update()
    )
