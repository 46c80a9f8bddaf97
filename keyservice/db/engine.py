"""Engine set-up for the two supported databases.

SQLite (embedded): WAL journal, ``synchronous`` from the settings (FULL by default, see
docs/decisions/0003-sqlite-durability.md), foreign keys on, and every transaction opened with
``BEGIN IMMEDIATE`` so writers queue instead of failing mid-transaction when two requests
both upgrade a read lock. Writers of one process queue on an in-process lock held for the
transaction: SQLite's own busy handler polls with sleeps of up to 100 ms, which under load
turned into second-long tail latencies. Other processes sharing the file still meet the
busy timeout. ``reading()`` runs a read-only transaction that takes neither lock (WAL
readers see a snapshot).

PostgreSQL: statement and lock timeouts, so a stuck audit append fails the request (503)
instead of freezing the service.

Both: ``hide_parameters``, so a database error's text (which the service logs) never carries
the statement's parameters: wrapped keys, code hashes, encrypted metadata.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import ConnectionPoolEntry

from keyservice.datadir import private_database

DB_TIMEOUT_S = 5.0
SQLITE_SYNCHRONOUS = frozenset({"FULL", "NORMAL"})
_DEFERRED = "carevault_deferred"
_SYNCHRONOUS = "carevault_synchronous"


@contextmanager
def reading(connection: Connection) -> Iterator[None]:
    """A read-only transaction that takes no write lock; it ends (rolls back) on exit."""
    connection.info[_DEFERRED] = True
    try:
        yield
    finally:
        connection.rollback()
        connection.info[_DEFERRED] = False


@contextmanager
def relaxed_durability(connection: Connection) -> Iterator[None]:
    """Commit the enclosed transaction without waiting for the disk (start it inside).

    For writes whose loss in a power cut is harmless, such as replay-cache entries: SQLite
    runs it with ``synchronous=NORMAL`` (set outside the transaction, as SQLite requires),
    PostgreSQL with ``synchronous_commit = off``.
    """
    if connection.dialect.name != "sqlite":
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        yield
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        # A failure can leave the transaction open, and SQLite refuses to change the setting
        # inside one: end it first, or the pooled connection would stay at NORMAL and later
        # audit commits on it would not be durable.
        if connection.in_transaction():
            connection.rollback()
        try:
            raw.execute(f"PRAGMA synchronous={connection.info[_SYNCHRONOUS]}")
        except sqlite3.Error as exc:
            # Never hand this connection out again; the request fails as a database error (503).
            connection.invalidate(exc)
            raise OperationalError("PRAGMA synchronous", None, exc) from exc


def restore_durability(connection: Connection) -> None:
    """Make later commits wait for the disk again, inside ``relaxed_durability`` after its
    transaction was rolled back (a refusal's audit entry is durable whatever the route).

    PostgreSQL's ``SET LOCAL`` ended with the transaction; SQLite's setting is reset here.
    """
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    try:
        raw.execute(f"PRAGMA synchronous={connection.info[_SYNCHRONOUS]}")
    except sqlite3.Error as exc:
        connection.invalidate(exc)
        raise OperationalError("PRAGMA synchronous", None, exc) from exc


def make_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for ``url`` with the service's connection settings applied."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_synchronous)
    timeout_ms = int(DB_TIMEOUT_S * 1000)
    return create_engine(
        url,
        hide_parameters=True,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=False,
        connect_args={"options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"},
    )


def _sqlite_engine(url: str, synchronous: str) -> Engine:
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite synchronous must be one of {sorted(SQLITE_SYNCHRONOUS)}")
    private_database(url)
    write_lock = threading.Lock()

    class LockingConnection(sqlite3.Connection):
        """Releases the process's write lock once its transaction has ended."""

        holds_lock = False

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self._release()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._release()

        def _release(self) -> None:
            # Not owned by a thread: FastAPI may end a request's work on another one.
            if self.holds_lock:
                self.holds_lock = False
                write_lock.release()

    engine = create_engine(
        url,
        hide_parameters=True,
        pool_size=20,
        max_overflow=20,
        connect_args={
            "timeout": DB_TIMEOUT_S,
            "check_same_thread": False,
            "factory": LockingConnection,
        },
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        record.info[_SYNCHRONOUS] = synchronous
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(DB_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        if connection.info.get(_DEFERRED):
            connection.exec_driver_sql("BEGIN")
            return
        dbapi_connection = connection.connection.dbapi_connection
        assert isinstance(dbapi_connection, LockingConnection)
        if not write_lock.acquire(timeout=DB_TIMEOUT_S):
            raise PoolTimeoutError("timed out waiting for the database write lock")
        dbapi_connection.holds_lock = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_connection.rollback()
            raise

    return engine
