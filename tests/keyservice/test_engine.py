"""Engine set-up: relaxed durability never outlives its transaction (SQLite, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from keyservice.db.engine import make_engine, relaxed_durability, restore_durability
from tests.keyservice.helpers import sqlite_synchronous

FULL = 2


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}", sqlite_synchronous="FULL")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE seen (k INTEGER PRIMARY KEY, v TEXT)")
        connection.exec_driver_sql("INSERT INTO seen (k) VALUES (1)")
    return engine


def test_a_failed_write_inside_relaxed_durability_restores_full(engine: Engine) -> None:
    with engine.connect() as connection:
        with pytest.raises(IntegrityError), relaxed_durability(connection):
            connection.exec_driver_sql("INSERT INTO seen (k) VALUES (2)")
            connection.exec_driver_sql("INSERT INTO seen (k) VALUES (1)")
        assert not connection.in_transaction()
        assert sqlite_synchronous(connection) == FULL
        # The failed transaction was rolled back as a whole, and the connection still writes.
        connection.exec_driver_sql("INSERT INTO seen (k) VALUES (3)")
        connection.commit()
        rows = connection.exec_driver_sql("SELECT k FROM seen ORDER BY k").scalars().all()
    assert rows == [1, 3]


def test_the_pooled_connection_comes_back_at_full(engine: Engine) -> None:
    engine.pool.dispose()
    with (
        engine.connect() as connection,
        pytest.raises(IntegrityError),
        relaxed_durability(connection),
    ):
        connection.exec_driver_sql("INSERT INTO seen (k) VALUES (1)")
    with engine.connect() as connection:
        assert sqlite_synchronous(connection) == FULL


def test_a_committed_write_restores_full(engine: Engine) -> None:
    with engine.connect() as connection:
        with relaxed_durability(connection):
            connection.exec_driver_sql("INSERT INTO seen (k) VALUES (4)")
            connection.commit()
        assert sqlite_synchronous(connection) == FULL


def test_a_refusal_inside_relaxed_durability_commits_at_full(engine: Engine) -> None:
    # A route under relaxed durability that refuses rolls back, restores, then audits: the
    # refusal's entry must wait for the disk although the block has not ended.
    with engine.connect() as connection, relaxed_durability(connection):
        connection.exec_driver_sql("INSERT INTO seen (k) VALUES (5)")
        assert sqlite_synchronous(connection) != FULL
        connection.rollback()
        restore_durability(connection)
        assert sqlite_synchronous(connection) == FULL
        connection.exec_driver_sql("INSERT INTO seen (k) VALUES (6)")
        connection.commit()


def test_restore_durability_inside_a_transaction_changes_nothing(engine: Engine) -> None:
    with engine.connect() as connection, relaxed_durability(connection):
        connection.exec_driver_sql("INSERT INTO seen (k) VALUES (7)")
        restore_durability(connection)
        assert connection.in_transaction()
        assert sqlite_synchronous(connection) != FULL
        connection.commit()


def test_database_errors_do_not_carry_the_statement_parameters(engine: Engine) -> None:
    secret = "wrapped-key-material-3f9a"
    with engine.connect() as connection, pytest.raises(IntegrityError) as failed:
        connection.execute(text("INSERT INTO seen (k, v) VALUES (:k, :v)"), {"k": 1, "v": secret})
    assert secret not in str(failed.value)


def test_postgresql_engines_hide_parameters_too() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert engine.hide_parameters
