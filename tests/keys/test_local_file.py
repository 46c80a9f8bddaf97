"""The local root key file: created 0600, refused when open to others, durable across restarts."""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from keyservice.errors import InsecureKeyFileError, KeyServiceError, RootKeyError
from keyservice.keys import LocalFileRootKeyProvider


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_the_file_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    LocalFileRootKeyProvider(path)
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["root.key"]


def test_creates_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    previous = os.umask(0)
    try:
        LocalFileRootKeyProvider(path)
    finally:
        os.umask(previous)
    assert _mode(path) == 0o600


def test_creates_missing_parent_directories_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "root.key"
    LocalFileRootKeyProvider(path)
    assert _mode(path.parent) & 0o077 == 0


def test_file_holds_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    LocalFileRootKeyProvider(path)
    document = json.loads(path.read_text())
    assert document["format"] == "carevault-root-keys/1"
    assert [entry["version"] for entry in document["keys"]] == [1]
    assert len(bytes.fromhex(document["keys"][0]["key"])) == 32


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o666])
def test_refuses_a_file_open_to_group_or_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "root.key"
    LocalFileRootKeyProvider(path)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFileError) as caught:
        LocalFileRootKeyProvider(path)
    message = str(caught.value)
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message
    assert isinstance(caught.value, RootKeyError)
    assert isinstance(caught.value, KeyServiceError)


def test_accepts_a_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    LocalFileRootKeyProvider(path)
    path.chmod(0o400)
    assert LocalFileRootKeyProvider(path).current_version() == 1


def test_survives_a_restart_with_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    wrapped = LocalFileRootKeyProvider(path).wrap(b"secret", context=b"c")
    assert LocalFileRootKeyProvider(path).unwrap(wrapped, context=b"c") == b"secret"


def test_rotation_is_persisted_and_keeps_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    first = LocalFileRootKeyProvider(path)
    old = first.wrap(b"old", context=b"c")
    first.rotate()
    new = first.wrap(b"new", context=b"c")
    assert _mode(path) == 0o600
    restarted = LocalFileRootKeyProvider(path)
    assert restarted.current_version() == 2
    assert restarted.unwrap(old, context=b"c") == b"old"
    assert restarted.unwrap(new, context=b"c") == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root.key", "root.key.lock"]


def test_instances_sharing_the_file_see_each_others_rotations(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    a, b = LocalFileRootKeyProvider(path), LocalFileRootKeyProvider(path)
    assert a.rotate() == 2
    assert b.unwrap(a.wrap(b"fresh", context=b"c"), context=b"c") == b"fresh"
    # b rotates from what is on disk, so a's version 2 is not overwritten.
    assert b.rotate() == 3
    assert LocalFileRootKeyProvider(path).current_version() == 3
    assert a.unwrap(b.wrap(b"newest", context=b"c"), context=b"c") == b"newest"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "other/1", "keys": [{"version": 1, "key": "' + b"00" * 32 + b'"}]}',
        b'{"format": "carevault-root-keys/1", "keys": []}',
        b'{"format": "carevault-root-keys/1", "keys": [{"version": 1, "key": "00"}]}',
        b'{"format": "carevault-root-keys/1", "keys": [{"version": 0, "key": "'
        + b"00" * 32
        + b'"}]}',
        b'{"format": "carevault-root-keys/1", "keys": [{"version": "1", "key": "'
        + b"00" * 32
        + b'"}]}',
        b'{"format": "carevault-root-keys/1", "keys": [{"version": 1, "key": "zz"}]}',
        b'{"format": "carevault-root-keys/1", "keys": [{"version": 1, "key": "'
        + b"00" * 32
        + b'"}, {"version": 1, "key": "'
        + b"11" * 32
        + b'"}]}',
    ],
    ids=[
        "empty",
        "not-json",
        "not-an-object",
        "other-format",
        "no-keys",
        "short-key",
        "version-zero",
        "version-not-int",
        "key-not-hex",
        "duplicate-version",
    ],
)
def test_refuses_a_malformed_file_without_quoting_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "root.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(RootKeyError) as caught:
        LocalFileRootKeyProvider(path)
    assert "00" * 8 not in str(caught.value)
    assert "11" * 8 not in str(caught.value)


def test_refuses_a_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    path.mkdir(mode=0o700)
    with pytest.raises(RootKeyError):
        LocalFileRootKeyProvider(path)


def test_instances_starting_together_create_one_set_of_keys(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        providers = list(pool.map(lambda _: LocalFileRootKeyProvider(path), range(16)))
    wrapped = providers[0].wrap(b"secret", context=b"c")
    assert all(p.unwrap(wrapped, context=b"c") == b"secret" for p in providers)


def test_concurrent_rotations_lose_no_version(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    providers = [LocalFileRootKeyProvider(path) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = sorted(pool.map(lambda p: p.rotate(), providers))
    assert versions == list(range(2, 10))
    document = json.loads(path.read_text())
    assert [entry["version"] for entry in document["keys"]] == list(range(1, 10))
