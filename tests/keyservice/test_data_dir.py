"""The embedded data directory is private to the service's account, whatever the umask.

A data directory the service (or a host command) creates is 0700, the SQLite database and its
``-wal``/``-shm`` files 0600, blob files 0600 in 0700 directories; a directory or database
file that group or others can reach is refused at start, naming the path and the chmod that
fixes it. Real servers and the real host commands, started with umask 022.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.keyservice.helpers import (
    admin_enrols,
    assign,
    bootstrap_admin,
    create_child,
    put_record,
)
from tests.servers import (
    KeyServiceFactory,
    ServerStartError,
    embedded_env,
    free_port,
    make_temp_dir,
    run_keyservice_command,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common default umask, inherited by the processes the test starts."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@dataclass(frozen=True)
class Fresh:
    env: dict[str, str]
    port: int
    data_dir: Path


@pytest.fixture
def fresh(umask_022: None) -> Iterator[Fresh]:
    """Embedded settings whose data directory does not exist yet (its parent is private)."""
    parent = make_temp_dir("carevault-datadir-")
    port = free_port()
    try:
        yield Fresh(embedded_env(parent / "data", port=port), port, parent / "data")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _open_to_others(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that group or others can reach."""
    found = []
    for path in [root, *root.rglob("*")]:
        if _mode(path) & 0o077:
            found.append(f"{path.relative_to(root.parent)} {_mode(path):o}")
    return found


@pytest.mark.parametrize("made_before", [False, True], ids=["missing", "empty-755"])
def test_a_host_command_makes_a_private_data_directory(fresh: Fresh, made_before: bool) -> None:
    """Created 0700, or, if something created it empty beforehand under the umask (the
    demo's launcher, an operator's mkdir), made 0700: nothing in it was exposed yet."""
    if made_before:
        fresh.data_dir.mkdir()
        assert _mode(fresh.data_dir) == 0o755
    run_keyservice_command(fresh.env, "migrate")
    assert _mode(fresh.data_dir) == 0o700
    assert _mode(fresh.data_dir / "carevault.db") == 0o600
    assert _open_to_others(fresh.data_dir) == []


def test_the_running_service_keeps_everything_private(
    fresh: Fresh, keyservice_factory: KeyServiceFactory
) -> None:
    """Database (with its WAL and shared-memory files while the service runs), key files and
    blobs: nothing in the data directory is open to group or others."""
    service = keyservice_factory.start(fresh.env, port=fresh.port)
    admin = bootstrap_admin(service)
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    put_record(educator, child_ids=[child])
    names = {path.name for path in fresh.data_dir.iterdir()}
    assert {"carevault.db", "carevault.db-wal", "carevault.db-shm", "root.key", "blobs"} <= names
    assert any(path.is_file() for path in (fresh.data_dir / "blobs").rglob("*"))
    assert _open_to_others(fresh.data_dir) == []


@pytest.mark.parametrize(
    ("name", "mode", "fix"),
    [
        pytest.param("", 0o755, "chmod 700", id="directory-755"),
        pytest.param("", 0o710, "chmod 700", id="directory-710"),
        pytest.param("carevault.db", 0o644, "chmod 600", id="database-644"),
        pytest.param("carevault.db", 0o620, "chmod 600", id="database-620"),
        pytest.param("carevault.db-wal", 0o604, "chmod 600", id="wal-604"),
    ],
)
def test_start_is_refused_while_data_is_open_to_others(
    fresh: Fresh,
    keyservice_factory: KeyServiceFactory,
    name: str,
    mode: int,
    fix: str,
) -> None:
    run_keyservice_command(fresh.env, "migrate")
    path = fresh.data_dir / name if name else fresh.data_dir
    if name:
        # SQLite removes the WAL when its last connection closes: put an empty one back, as
        # a service that was killed would leave it.
        path.touch()
    path.chmod(mode)
    refusal = f"{fix} {path}"

    refused = run_keyservice_command(fresh.env, "migrate", check=False)
    assert refused.returncode != 0
    assert refusal in refused.stderr
    with pytest.raises(ServerStartError) as failed:
        keyservice_factory.start(fresh.env, port=fresh.port)
    assert refusal in str(failed.value)

    path.chmod(0o700 if name == "" else 0o600)
    run_keyservice_command(fresh.env, "migrate")
