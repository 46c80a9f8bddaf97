"""The local-directory store: atomic writes, no way out of its root, uploads written once and
at their exact size. Its URLs, as the key service serves them, are tested in
tests/keyservice/test_local_blobs.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from pathlib import Path

import pytest

from vault.format import digest_of
from vault.storage import (
    MIN_PART_SIZE,
    CompletedPart,
    InvalidObjectName,
    LocalDirectoryStore,
    ObjectExists,
    ObjectNotFound,
    WrongSize,
    new_object_name,
)

KEY = b"t" * 32
BASE = "http://127.0.0.1:8800"


@pytest.fixture
def store(tmp_path: Path) -> LocalDirectoryStore:
    # No test here looks at time: the URLs' expiry is test_local_blobs.py's.
    return LocalDirectoryStore(tmp_path / "blobs", base_url=BASE + "/", token_key=KEY)


class FailingSource:
    """Yields some bytes, then fails, like a client that disconnects mid-upload."""

    def __init__(self, first: bytes) -> None:
        self._first: bytes | None = first

    def read(self, size: int = -1, /) -> bytes:
        if self._first is not None:
            chunk, self._first = self._first, None
            return chunk
        raise ConnectionResetError("client went away")


def test_failed_write_leaves_the_old_object_and_no_temporary_file(
    store: LocalDirectoryStore,
) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"committed"))
    with pytest.raises(ConnectionResetError):
        store.put(name, FailingSource(b"partial"))
    assert store.get(name).read() == b"committed"
    assert list((store.root / ".tmp").iterdir()) == []


def test_failed_first_write_leaves_no_object(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    with pytest.raises(ConnectionResetError):
        store.put(name, FailingSource(b"partial"))
    with pytest.raises(ObjectNotFound):
        store.stat(name)
    assert list(store.list_names()) == []


def test_files_and_directories_are_private(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"x"))
    path = store.root / name[:2] / name
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(store.root.stat().st_mode) & 0o077 == 0


def test_symlinked_shard_directory_cannot_lead_outside(
    store: LocalDirectoryStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    name = new_object_name()
    (store.root / name[:2]).symlink_to(outside, target_is_directory=True)
    (outside / name).write_bytes(b"secret outside the store")
    with pytest.raises(InvalidObjectName):
        store.put(name, io.BytesIO(b"x"))
    for reach in (store.get, store.stat, store.delete):
        with pytest.raises(InvalidObjectName):
            reach(name)
    assert (outside / name).read_bytes() == b"secret outside the store"
    assert name not in list(store.list_names())


def test_symlinked_object_cannot_lead_outside(store: LocalDirectoryStore, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret outside the store")
    name = new_object_name()
    (store.root / name[:2]).mkdir()
    (store.root / name[:2] / name).symlink_to(target)
    for reach in (store.get, store.sha256, store.open_sized):
        with pytest.raises(InvalidObjectName):
            reach(name)
    assert target.read_bytes() == b"secret outside the store"


def test_upload_id_cannot_name_a_path(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    for upload_id in ["../" + "a" * 29, "/tmp", ".."]:
        with pytest.raises(InvalidObjectName):
            store.complete_multipart(name, upload_id=upload_id, parts=[CompletedPart(1, "x")])
        with pytest.raises(InvalidObjectName):
            store.abort_multipart(name, upload_id=upload_id)


def test_stray_files_are_not_listed(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"x"))
    (store.root / name[:2] / "notes.txt").write_text("x")
    (store.root / "zz").mkdir()
    misplaced = "ff" + name[2:]
    (store.root / name[:2] / misplaced).write_text("x")
    assert list(store.list_names()) == [name]


def test_expiry_must_be_positive(store: LocalDirectoryStore) -> None:
    with pytest.raises(ValueError):
        store.presign_get(new_object_name(), expires_s=0)


def test_root_is_created_private(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    LocalDirectoryStore(root, base_url=BASE, token_key=KEY)
    assert root.is_dir()
    assert stat.S_IMODE(os.stat(root).st_mode) & 0o077 == 0


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_a_digest_is_not_reported_for_a_file_changed_since(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"written by the store"))
    path = store.root / name[:2] / name
    path.write_bytes(b"rewritten behind its back")
    assert store.stat(name).sha256 is None
    assert store.sha256(name) == _digest(b"rewritten behind its back")

    store.put(name, io.BytesIO(b"replaced"))
    assert store.stat(name).sha256 == _digest(b"replaced")
    replacement = store.root / ".tmp" / "replacement"
    replacement.write_bytes(b"swapped in")
    os.replace(replacement, path)
    assert store.stat(name).sha256 is None


def test_a_malformed_digest_file_is_ignored(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"x"))
    (store.root / name[:2] / f"{name}.sha256").write_text("not json")
    assert store.stat(name).sha256 is None


def test_delete_removes_the_digest_and_it_is_never_listed(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"x"))
    assert list(store.list_names()) == [name]
    store.delete(name)
    assert list((store.root / name[:2]).iterdir()) == []


def test_sha256_if_size_reads_a_file_changed_since_it_was_written(
    store: LocalDirectoryStore,
) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"written by the store"))
    (store.root / name[:2] / name).write_bytes(b"rewritten, same size")
    assert store.sha256_if_size(name, size=20) == _digest(b"rewritten, same size")


def test_the_blake3_recorded_at_write_answers_and_a_changed_file_is_read_again(
    store: LocalDirectoryStore,
) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"written by the store"))
    recorded = json.loads((store.root / name[:2] / f"{name}.sha256").read_text())
    assert bytes.fromhex(recorded["blake3"]) == digest_of("blake3", b"written by the store").value
    assert store.digest_if_size(name, size=20, alg="blake3") == bytes.fromhex(recorded["blake3"])
    (store.root / name[:2] / name).write_bytes(b"rewritten, same size")
    assert store.digest_if_size(name, size=20, alg="blake3") == (
        digest_of("blake3", b"rewritten, same size").value
    )


def test_an_object_recorded_before_blake3_is_read_back_for_it(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"written before BLAKE3"))
    digest_file = store.root / name[:2] / f"{name}.sha256"
    recorded = json.loads(digest_file.read_text())
    del recorded["blake3"]
    digest_file.write_text(json.dumps(recorded))
    assert store.stat(name).sha256 == _digest(b"written before BLAKE3")
    assert store.digest_if_size(name, size=21, alg="blake3") == (
        digest_of("blake3", b"written before BLAKE3").value
    )


def test_an_upload_is_written_once_and_only_at_its_size(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    with pytest.raises(WrongSize):
        store.write_upload(name, io.BytesIO(b"too long"), size=4)
    with pytest.raises(WrongSize):
        store.write_upload(name, io.BytesIO(b"ab"), size=4)
    with pytest.raises(ObjectNotFound):
        store.stat(name)
    etag = store.write_upload(name, io.BytesIO(b"body"), size=4)
    assert etag == f'"{_digest(b"body").hex()}"'
    with pytest.raises(ObjectExists):
        store.write_upload(name, io.BytesIO(b"swap"), size=4)
    stream, size = store.open_sized(name)
    with stream:
        assert (stream.read(), size) == (b"body", 4)
    assert list((store.root / ".tmp").iterdir()) == []


def test_a_part_is_written_only_at_its_size_into_its_own_upload(
    store: LocalDirectoryStore,
) -> None:
    name = new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    with pytest.raises(WrongSize):
        store.write_part(
            name, io.BytesIO(b"short"), upload_id=upload.upload_id, part_number=1, size=10
        )
    with pytest.raises(ObjectNotFound):
        store.write_part(
            new_object_name(),
            io.BytesIO(b"0123456789"),
            upload_id=upload.upload_id,
            part_number=1,
            size=10,
        )
    etag = store.write_part(
        name, io.BytesIO(b"0123456789"), upload_id=upload.upload_id, part_number=1, size=10
    )
    store.complete_multipart(name, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.get(name).read() == b"0123456789"
