"""The replay cache: each (device, nonce) is accepted once, on any instance sharing the DB."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from keyservice.auth.verifier import SKEW
from keyservice.db.engine import relaxed_durability
from keyservice.db.tables import seen_nonces
from keyservice.errors import AuthenticationError, Refusal

CLEANUP_INTERVAL_S = 60.0

# Built once per dialect: constructing the statement cost more than running it.
_INSERT = {
    dialect.dialect.name: dialect.insert(seen_nonces)
    .on_conflict_do_nothing()
    .returning(seen_nonces.c.device_id, seen_nonces.c.nonce)
    for dialect in (postgresql, sqlite)
}


_SEEN = select(seen_nonces.c.nonce).where(
    seen_nonces.c.device_id == bindparam("device_id"), seen_nonces.c.nonce == bindparam("nonce")
)


class ReplayCache:
    """Remembers nonces in the database table ``seen_nonces``.

    An entry outlives the skew window (2 × SKEW after now), after which the created-time
    check alone rejects a replay; each instance sweeps expired entries about once a minute.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def remember(
        self, connection: Connection, *, device_id: str, nonce: str, now: datetime
    ) -> None:
        """Record and commit the nonce, or raise if it was seen before.

        A transaction of its own: a nonce is spent once accepted, whatever the request's
        outcome, and the request's work does not hold the write lock meanwhile. A nonce lost
        in a power cut could be replayed only within the skew window after the restart, so
        its commit does not wait for the disk.
        """
        with relaxed_durability(connection):
            if not self.spend(connection, [(device_id, nonce)], now=now):
                connection.rollback()
                raise AuthenticationError(Refusal.REPLAYED_NONCE)
            connection.commit()

    def seen(self, connection: Connection, *, device_id: str, nonce: str) -> bool:
        """Whether the nonce was spent before: a read, for a request that spends its nonce
        later (a key release) to refuse a replay before its work. Only ``spend`` decides."""
        found = connection.execute(_SEEN, {"device_id": device_id, "nonce": nonce}).first()
        return found is not None

    def spend(
        self, connection: Connection, pairs: Sequence[tuple[str, str]], *, now: datetime
    ) -> set[tuple[str, str]]:
        """Insert the (device, nonce) ``pairs`` in the current transaction; return the fresh ones.

        The caller commits (a key release spends its nonce with its audit entry, decision
        0007). Pairs must be distinct.
        """
        self._sweep_if_due(connection, now)
        statement = _INSERT[connection.dialect.name]
        expires_at = now + 2 * SKEW
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount here.
        if len(pairs) == 1:
            ((device_id, nonce),) = pairs
            row = connection.execute(
                statement, {"device_id": device_id, "nonce": nonce, "expires_at": expires_at}
            ).first()
            return {(device_id, nonce)} if row is not None else set()
        returned = connection.execute(
            statement,
            [
                {"device_id": device_id, "nonce": nonce, "expires_at": expires_at}
                for device_id, nonce in pairs
            ],
        )
        return {(row.device_id, row.nonce) for row in returned}

    def _sweep_if_due(self, connection: Connection, now: datetime) -> None:
        with self._lock:
            if time.monotonic() - self._last_sweep < CLEANUP_INTERVAL_S:
                return
            self._last_sweep = time.monotonic()
        connection.execute(delete(seen_nonces).where(seen_nonces.c.expires_at < now))
