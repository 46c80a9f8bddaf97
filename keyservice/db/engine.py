"""Engine set-up for the two supported databases.

SQLite (embedded): WAL journal, ``synchronous`` from the settings (FULL by default, see
docs/decisions/0003-sqlite-durability.md), foreign keys on, and every transaction opened with
``BEGIN IMMEDIATE`` so writers queue on the busy timeout instead of failing mid-transaction
when two requests both upgrade a read lock. PostgreSQL: statement and lock timeouts, so a
stuck audit append fails the request (503) instead of freezing the service.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry

DB_TIMEOUT_S = 5.0
SQLITE_SYNCHRONOUS = frozenset({"FULL", "NORMAL"})


def make_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for ``url`` with the service's connection settings applied."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_synchronous)
    timeout_ms = int(DB_TIMEOUT_S * 1000)
    return create_engine(
        url,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=False,
        connect_args={"options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"},
    )


def _sqlite_engine(url: str, synchronous: str) -> Engine:
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite synchronous must be one of {sorted(SQLITE_SYNCHRONOUS)}")
    engine = create_engine(
        url,
        pool_size=20,
        max_overflow=20,
        connect_args={"timeout": DB_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(DB_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
