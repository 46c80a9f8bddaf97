"""The data directory and the embedded database are the service account's alone.

The data directory holds the SQLite catalog (children, rooms, principals, roles), the local
blobs and the key files. It is created 0700 and the database 0600 whatever the umask; one that
group or others can reach is refused at start, like a key file (keyfiles.py), naming the path
and the chmod that fixes it. SQLite gives the ``-wal`` and ``-shm`` files it creates the mode
of the database file, so the database is created here, 0600, before SQLite opens it.
"""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path

from sqlalchemy.engine import make_url

from keyservice.errors import InsecureDataError

# The database file and the files SQLite keeps beside it.
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create the data directory ``path`` (0700) if it is missing; refuse it if group or
    others can reach it and it holds anything.

    An empty one is made 0700 instead: nothing in it was ever exposed, and tools that create
    the directory first (``mkdir``, the demo's launcher) would otherwise need a chmod before
    the first start.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        path.mkdir(mode=0o700)
    if _open_to_others(path) and _empty(path):
        # Made by an earlier mkdir under a looser umask; it holds nothing to have exposed.
        path.chmod(0o700)
    if _open_to_others(path):
        raise InsecureDataError(
            f"the data directory {path} is open to group or others: run chmod 700 {path}"
        )


def private_database(url: str) -> None:
    """For a SQLite database file: create it 0600 if it is missing; refuse it, or the files
    SQLite keeps beside it, if group or others can reach them. Other databases are left alone.
    """
    path = sqlite_file(url)
    if path is None:
        return
    # Only ever a new file: closing a descriptor of a database this process already has open
    # drops every POSIX lock SQLite holds on it, and another process would then delete the
    # WAL under the live connections. A missing directory is left to SQLite's own error.
    with suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600))
    named = [f"{path}{suffix}" for suffix in _SQLITE_SUFFIXES]
    open_files = [name for name in named if _open_to_others(Path(name))]
    if open_files:
        listed = " ".join(open_files)
        raise InsecureDataError(
            f"the database files {listed} are open to group or others: run chmod 600 {listed}"
        )


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _empty(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def _open_to_others(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))
