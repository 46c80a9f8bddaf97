"""The replay cache: each (device, nonce) is accepted once, on any instance sharing the DB."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from keyservice.auth.verifier import SKEW
from keyservice.db.tables import seen_nonces
from keyservice.errors import AuthenticationError

CLEANUP_INTERVAL_S = 60.0


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
        """Record the nonce in the current transaction, or raise if it was seen before."""
        self._sweep_if_due(connection, now)
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(seen_nonces)
            .values(device_id=device_id, nonce=nonce, expires_at=now + 2 * SKEW)
            .on_conflict_do_nothing()
            .returning(seen_nonces.c.nonce)
        )
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount here.
        if connection.execute(statement).first() is None:
            connection.rollback()
            raise AuthenticationError("replayed_nonce")
        connection.commit()

    def _sweep_if_due(self, connection: Connection, now: datetime) -> None:
        with self._lock:
            if time.monotonic() - self._last_sweep < CLEANUP_INTERVAL_S:
                return
            self._last_sweep = time.monotonic()
        connection.execute(delete(seen_nonces).where(seen_nonces.c.expires_at < now))
