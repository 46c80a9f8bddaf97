"""Back up the key service's database to one file, and restore it into a new, empty one
(``carevault-keyservice backup PATH`` / ``restore PATH``; decision 0025).

- **PostgreSQL**: ``pg_dump --format=custom`` (one consistent snapshot, taken while the
  service runs) and ``pg_restore --single-transaction``, the distro's client programs. The
  password goes to them through ``PGPASSWORD``, never on a command line others can read.
- **SQLite**: the online backup API (``sqlite3.Connection.backup``): a consistent copy,
  write-ahead log included, while the service runs.

The file holds every wrapped key, principal and audit entry: it is written 0600 and never
over an existing file. It holds no root key, no audit key and no blob: docs/BACKUPS.md says
what else to back up and in which order. A restore goes only into a database without tables,
so it can never mix two histories; the caller migrates and verifies the audit chain after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL, make_url

from keyservice.datadir import sqlite_file

POSTGRES_CLIENT_DIRS = Path("/usr/lib/postgresql")
PG_TIMEOUT_S = 3600.0
SQLITE_PAGES_PER_STEP = 4096  # copied between lock releases, so the service's writers go on
# A backup file of either kind begins with one of these.
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that could not be made; the message says why and what to do.
    Nothing was restored when it is raised before the copy began (``refused``)."""

    def __init__(self, message: str, *, refused: bool = True) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Made:
    """What a backup or restore did: the database kind and the file's size in bytes."""

    kind: str
    size: int


def describe(database_url: str) -> str:
    """The database's URL without its password, for messages."""
    return make_url(database_url).render_as_string(hide_password=True)


def backup(database_url: str, path: Path) -> Made:
    """Copy the database named by ``database_url`` into the new file ``path``."""
    url = make_url(database_url)
    with _new_private_file(path):
        source = sqlite_file(database_url)
        if source is not None:
            _sqlite_backup(source, path)
            kind = "sqlite"
        elif url.get_backend_name() == "postgresql":
            _pg_run("pg_dump", url, ["--format=custom", "--no-owner", "--file", str(path)])
            kind = "postgresql"
        else:
            raise BackupError(f"cannot back up {describe(database_url)}: SQLite or PostgreSQL only")
    return Made(kind, path.stat().st_size)


def restore(database_url: str, path: Path, engine: Engine) -> Made:
    """Restore the backup file ``path`` into the empty database ``engine`` (made from
    ``database_url``). BackupError, with nothing changed, if the database holds any table or
    the file is not a backup of this database's kind."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read the backup {path}: {exc.strerror}") from None
    tables = inspect(engine).get_table_names()
    if tables:
        raise BackupError(
            f"nothing restored: {describe(database_url)} already holds {len(tables)} tables. "
            "Restore only into a new, empty database: create one and point "
            "CAREVAULT_DATABASE_URL at it"
        )
    target = sqlite_file(database_url)
    if target is not None:
        if not head.startswith(SQLITE_MAGIC):
            raise BackupError(f"nothing restored: {path} is not a SQLite backup")
        _sqlite_restore(path, target)
        return Made("sqlite", path.stat().st_size)
    if not head.startswith(PG_CUSTOM_MAGIC):
        raise BackupError(f"nothing restored: {path} is not a pg_dump backup (custom format)")
    _pg_run(
        "pg_restore",
        make_url(database_url),
        ["--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges", str(path)],
    )
    return Made("postgresql", path.stat().st_size)


# --- SQLite ---------------------------------------------------------------------------------


def _sqlite_backup(source: Path, path: Path) -> None:
    if not source.exists():
        raise BackupError(f"no database at {source}: check CAREVAULT_DATABASE_URL")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(path)
    try:
        src.backup(dst, pages=SQLITE_PAGES_PER_STEP)
    finally:
        dst.close()
        src.close()


def _sqlite_restore(path: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = {row[0] for row in src.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" not in names:
            raise BackupError(f"nothing restored: {path} is not a Carevault database backup")
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=SQLITE_PAGES_PER_STEP)
        finally:
            dst.close()
    finally:
        src.close()


# --- PostgreSQL -----------------------------------------------------------------------------


def pg_command(program: str, url: URL, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``program`` against ``url``: the password
    in ``PGPASSWORD``, never in the command line (which every local user can read)."""
    env = {**os.environ}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    # URL.set(password=None) keeps the password (None means "unchanged"): build it anew.
    without_password = URL.create(
        "postgresql",
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )
    dbname = without_password.render_as_string(hide_password=False)
    return [pg_client(program), f"--dbname={dbname}", *args], env


def _pg_run(program: str, url: URL, args: list[str]) -> None:
    argv, env = pg_command(program, url, args)
    try:
        ran = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupError(
            f"{program} did not finish in {PG_TIMEOUT_S:.0f} s", refused=False
        ) from None
    if ran.returncode != 0:
        detail = (ran.stderr or ran.stdout).strip().splitlines()
        raise BackupError(
            f"{program} failed (exit {ran.returncode}): {detail[-1] if detail else 'no output'}",
            refused=program == "pg_dump",
        )


def pg_client(program: str) -> str:
    """The newest installed ``pg_dump`` or ``pg_restore``: it must be at least the server's
    major version, and the distro keeps one directory per version."""
    versions = sorted(
        POSTGRES_CLIENT_DIRS.glob(f"*/bin/{program}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return str(versions[-1])
    found = shutil.which(program)
    if found is None:
        raise BackupError(
            f"{program} is not installed: install the PostgreSQL client programs "
            "(Debian: apt-get install postgresql-client) of the server's version or newer"
        )
    return found


# --- files ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _new_private_file(path: Path) -> Iterator[None]:
    """Create ``path`` 0600 (never over an existing file); remove it if the backup fails."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise BackupError(
            f"{path} exists: a backup never overwrites a file; name a new one"
        ) from None
    except OSError as exc:
        raise BackupError(f"cannot create {path}: {exc.strerror}") from None
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise
