"""What ``keyservice/backup.py`` refuses before it copies anything (SQLite, no server): a
backup over an existing file, a restore from a file that is not a backup of a Carevault
database, and a restore into a database that holds anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from keyservice import backup as backup_db


def _database(path: Path, *tables: str) -> str:
    with sqlite3.connect(path) as connection:
        for table in tables:
            connection.execute(f"CREATE TABLE {table} (x INTEGER)")
    return f"sqlite:///{path}"


def test_a_backup_never_overwrites_a_file(tmp_path: Path) -> None:
    url = _database(tmp_path / "live.db", "alembic_version")
    existing = tmp_path / "backup"
    existing.write_bytes(b"an older backup")
    with pytest.raises(backup_db.BackupError, match="never overwrites"):
        backup_db.backup(url, existing)
    assert existing.read_bytes() == b"an older backup"


def test_a_failed_backup_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(backup_db.BackupError, match="no database at"):
        backup_db.backup(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "backup")
    assert not (tmp_path / "backup").exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"PGDMP\x01\x0f", "is not a SQLite backup"),
        (b"not a database at all", "is not a SQLite backup"),
        (None, "is not a Carevault database backup"),  # a SQLite file of something else
    ],
)
def test_a_restore_refuses_a_file_that_is_not_a_backup_and_changes_nothing(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    source = tmp_path / "backup"
    if content is None:
        _database(source, "photos")
    else:
        source.write_bytes(content)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = create_engine(url)
    with pytest.raises(backup_db.BackupError, match=why) as refused:
        backup_db.restore(url, source, engine)
    assert refused.value.refused
    assert inspect(engine).get_table_names() == []


def test_a_restore_into_a_database_with_tables_is_refused(tmp_path: Path) -> None:
    made = tmp_path / "backup"
    backup_db.backup(_database(tmp_path / "live.db", "alembic_version", "records"), made)
    url = _database(tmp_path / "other.db", "children")
    engine = create_engine(url)
    with pytest.raises(backup_db.BackupError, match="already holds 1 tables"):
        backup_db.restore(url, made, engine)
    assert inspect(engine).get_table_names() == ["children"]
    # Into an empty one, it restores.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert backup_db.restore(fresh, made, create_engine(fresh)).kind == "sqlite"
    assert inspect(create_engine(fresh)).get_table_names() == ["alembic_version", "records"]


def test_the_database_password_reaches_pg_dump_through_its_environment_only() -> None:
    url = make_url("postgresql+psycopg://carevault:s3cret-pw@db.internal:5433/carevault")
    argv, env = backup_db.pg_command("pg_dump", url, ["--format=custom"])
    assert env["PGPASSWORD"] == "s3cret-pw"
    assert not [arg for arg in argv if "s3cret" in arg]
    assert argv[1:] == [
        "--dbname=postgresql://carevault@db.internal:5433/carevault",
        "--format=custom",
    ]
    assert "s3cret" not in backup_db.describe(url.render_as_string(hide_password=False))
