"""A refusal's audit entry waits for the disk even inside a route that commits its own work
without waiting (``relaxed_durability``: record creation, decision 0003), and a commit whose
store cannot check MD5s falls back to reading the object (decision 0008). No server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, create_engine, event, insert, select

from keyservice.audit.mac import AuditMac
from keyservice.audit.record import refuse
from keyservice.caller import Caller
from keyservice.catalog.uploads import md5s_match
from keyservice.db import make_engine, upgrade_to_head
from keyservice.db.engine import relaxed_durability
from keyservice.db.tables import audit_entries, seen_nonces
from keyservice.errors import RefusedError
from keyservice.state import ServiceState
from tests.keyservice.helpers import sqlite_synchronous
from tests.servers import PostgresServer
from vault.storage import BackendError, BlobStore, ObjectNotFound

FULL = 2
CALLER = Caller(
    principal_id="a" * 32,
    device_id="b" * 32,
    kind="staff",
    roles=frozenset({"educator"}),
    display_name="Educator",
    organisation=None,
    receiving_key=bytes(32),
    nonce="c" * 32,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'refusal.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        database = server.create_database()
        # The test server turns synchronous_commit off for speed; this database waits for
        # the disk, as a deployment's would, so that relaxing it can be seen.
        admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(
                f'ALTER DATABASE "{database.dbname}" SET synchronous_commit = on'
            )
        admin.dispose()
        url = database.url
    engine = make_engine(url, sqlite_synchronous="FULL")
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def _durable(connection: Connection) -> bool:
    """Whether a commit on ``connection`` now waits for the disk."""
    if connection.dialect.name == "sqlite":
        return sqlite_synchronous(connection) == FULL
    raw = connection.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        row = cursor.fetchone()
    assert row is not None
    return bool(row[0] == "on")


def _state() -> ServiceState:
    return cast(
        ServiceState,
        SimpleNamespace(
            clock=lambda: datetime.now(UTC),
            audit_key=Ed25519PrivateKey.generate(),
            audit_mac=AuditMac(secrets.token_bytes(32)),
            settings=SimpleNamespace(checkpoint_every=1000),
        ),
    )


def test_a_refusal_inside_relaxed_durability_commits_its_entry_at_full(engine: Engine) -> None:
    durable: list[bool] = []
    with engine.connect() as db:

        @event.listens_for(db, "commit")
        def on_commit(connection: Connection) -> None:
            durable.append(_durable(connection))

        with relaxed_durability(db), pytest.raises(RefusedError) as refused:
            db.execute(
                insert(seen_nonces).values(
                    device_id="d" * 32, nonce="e" * 32, expires_at=datetime.now(UTC)
                )
            )
            assert not _durable(db)
            refuse(db, _state(), CALLER, "record.create", {}, status=403, message="no")
        entries = db.execute(select(audit_entries.c.action, audit_entries.c.outcome)).all()
        rolled_back = db.execute(select(seen_nonces)).all()
    assert refused.value.status == 403
    assert durable == [True]
    assert [(e.action, e.outcome) for e in entries] == [("record.create", "deny")]
    assert rolled_back == []


class _Store:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def md5s_match(self, name: str, **_: Any) -> bool:
        raise self.error


def _check_md5s(store: _Store) -> bool:
    return md5s_match(
        cast(BlobStore, store), "f" * 32, size=10, part_md5s=(bytes(16),), multipart=False
    )


def test_a_store_that_cannot_check_md5s_leaves_it_to_the_read_back() -> None:
    assert _check_md5s(_Store(BackendError("HEAD failed"))) is False


def test_a_missing_object_is_not_read_back() -> None:
    with pytest.raises(ObjectNotFound):
        _check_md5s(_Store(ObjectNotFound("gone")))
