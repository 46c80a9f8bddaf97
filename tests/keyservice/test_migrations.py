"""The migrations build exactly the schema keyservice/db/tables.py describes, on both
databases, and step back down cleanly: a column added to one and not the other fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from keyservice.db.migrate import MIGRATIONS, upgrade_to_head
from keyservice.db.tables import metadata
from tests.servers import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    if request.param == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return sa.create_engine(server.create_database().url)


def _differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))


def test_the_migrated_schema_is_the_declared_one(engine: sa.Engine) -> None:
    upgrade_to_head(engine)
    assert _differences(engine) == []


def test_a_declared_column_the_migrations_lack_is_found(engine: sa.Engine) -> None:
    upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE shares DROP COLUMN ack_due"))
    assert _differences(engine) != []


def test_the_migrations_go_down_to_nothing_and_up_again(engine: sa.Engine) -> None:
    upgrade_to_head(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade_to_head(engine)
    assert _differences(engine) == []


def test_versions_committed_before_0013_keep_their_sha256_named_so(tmp_path: Path) -> None:
    # Their digests stay valid: the migration names the algorithm that made them.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'before.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0010")
        connection.execute(
            sa.text(
                "INSERT INTO record_versions (record_id, version, state, object_name,"
                " ciphertext_size, ciphertext_sha256, created_by, created_at)"
                " VALUES (:r, 1, 'committed', 'obj', 3, :d, :p, '2026-12-01 00:00:00')"
            ),
            {"r": "a" * 32, "d": bytes(32), "p": "b" * 32},
        )
    upgrade_to_head(engine)
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT ciphertext_digest_alg, ciphertext_sha256 FROM record_versions")
        ).one()
    assert tuple(row) == ("sha256", bytes(32))
