"""The local-directory store: atomic writes, no way out of its root, token-guarded URLs."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from vault.storage import (
    BLOB_ROUTE,
    MIN_PART_SIZE,
    CompletedPart,
    InvalidObjectName,
    InvalidToken,
    LocalDirectoryStore,
    ObjectExists,
    ObjectNotFound,
    UploadError,
    WrongSize,
    new_object_name,
)

KEY = b"t" * 32
BASE = "http://127.0.0.1:8800"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> LocalDirectoryStore:
    return LocalDirectoryStore(tmp_path / "blobs", base_url=BASE + "/", token_key=KEY, clock=clock)


def token_of(url: str) -> str:
    assert url.startswith(BASE + BLOB_ROUTE)
    return url.removeprefix(BASE + BLOB_ROUTE)


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
    with pytest.raises(InvalidObjectName):
        store.get(name)
    with pytest.raises(InvalidObjectName):
        store.stat(name)
    with pytest.raises(InvalidObjectName):
        store.delete(name)
    assert (outside / name).read_bytes() == b"secret outside the store"
    assert name not in list(store.list_names())


def test_symlinked_object_cannot_lead_outside(store: LocalDirectoryStore, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret outside the store")
    name = new_object_name()
    (store.root / name[:2]).mkdir()
    (store.root / name[:2] / name).symlink_to(target)
    with pytest.raises(InvalidObjectName):
        store.get(name)
    with pytest.raises(InvalidObjectName):
        store.sha256(name)
    token = token_of(store.presign_get(name, expires_s=60))
    with pytest.raises(InvalidObjectName):
        store.send(token, now=store_clock_now(store))
    assert target.read_bytes() == b"secret outside the store"


def store_clock_now(store: LocalDirectoryStore) -> float:
    return store._clock()


def test_upload_id_cannot_name_a_path(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    for upload_id in ["../" + "a" * 29, "/tmp", ".."]:
        with pytest.raises(InvalidObjectName):
            store.complete_multipart(name, upload_id=upload_id, parts=[CompletedPart(1, "x")])
        with pytest.raises(InvalidObjectName):
            store.abort_multipart(name, upload_id=upload_id)


def test_upload_of_one_object_cannot_complete_another(store: LocalDirectoryStore) -> None:
    name, other = new_object_name(), new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    etag = store.receive(token_of(upload.part_urls[0]), io.BytesIO(b"0123456789"), now=0)
    with pytest.raises(ObjectNotFound):
        store.complete_multipart(other, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    store.complete_multipart(name, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.get(name).read() == b"0123456789"


def test_short_middle_part_is_refused(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    upload = store.start_multipart(
        name, size=MIN_PART_SIZE + 1, part_size=MIN_PART_SIZE, expires_s=60
    )
    with pytest.raises(WrongSize):
        store.receive(token_of(upload.part_urls[0]), io.BytesIO(b"short"), now=0)
    second = store.receive(token_of(upload.part_urls[1]), io.BytesIO(b"x"), now=0)
    with pytest.raises(UploadError):
        store.complete_multipart(
            name,
            upload_id=upload.upload_id,
            parts=[CompletedPart(1, second), CompletedPart(2, second)],
        )
    assert list((store.root / ".tmp").iterdir()) == []


def test_urls_expire(store: LocalDirectoryStore, clock: Clock) -> None:
    name = new_object_name()
    put = token_of(store.presign_put(name, size=4, expires_s=30))
    get = token_of(store.presign_get(name, expires_s=30))
    store.receive(put, io.BytesIO(b"data"), now=clock.now + 29)
    assert store.send(get, now=clock.now + 29)[0].read() == b"data"
    with pytest.raises(InvalidToken):
        store.receive(put, io.BytesIO(b"late"), now=clock.now + 30)
    with pytest.raises(InvalidToken):
        store.send(get, now=clock.now + 30)
    assert store.get(name).read() == b"data"


def test_get_token_cannot_write_and_put_token_cannot_read(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"data"))
    get = token_of(store.presign_get(name, expires_s=30))
    put = token_of(store.presign_put(name, size=4, expires_s=30))
    with pytest.raises(InvalidToken):
        store.receive(get, io.BytesIO(b"overwrite"), now=store_clock_now(store))
    with pytest.raises(InvalidToken):
        store.send(put, now=store_clock_now(store))
    assert store.get(name).read() == b"data"


def test_part_token_is_not_a_whole_object_token(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    with pytest.raises(InvalidToken):
        store.verify_token(token_of(upload.part_urls[0]), "PUT", store_clock_now(store))


def test_token_from_another_store_is_refused(tmp_path: Path, store: LocalDirectoryStore) -> None:
    other = LocalDirectoryStore(tmp_path / "other", base_url=BASE, token_key=b"o" * 32)
    name = new_object_name()
    store.put(name, io.BytesIO(b"data"))
    foreign = token_of(other.presign_get(name, expires_s=60))
    with pytest.raises(InvalidToken):
        store.send(foreign, now=store_clock_now(store))


def test_verify_token_returns_the_name(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    token = store.make_token(name, "GET", 100)
    assert store.verify_token(token, "GET", 99) == name
    with pytest.raises(InvalidToken):
        store.verify_token(token, "GET", 100)


def test_send_reports_the_size(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"x" * 1234))
    stream, size = store.send(
        token_of(store.presign_get(name, expires_s=5)), now=store_clock_now(store)
    )
    with stream:
        assert size == 1234


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


def test_upload_url_cannot_replace_a_written_object(store: LocalDirectoryStore) -> None:
    """An upload URL that is still valid after its version was committed must not swap the
    committed blob (security review, finding 3)."""
    name = new_object_name()
    put = token_of(store.presign_put(name, size=9, expires_s=3600))
    store.receive(put, io.BytesIO(b"committed"), now=store_clock_now(store))
    with pytest.raises(ObjectExists):
        store.receive(put, io.BytesIO(b"substitute"), now=store_clock_now(store))
    other_url = token_of(store.presign_put(name, size=9, expires_s=3600))
    with pytest.raises(ObjectExists):
        store.receive(other_url, io.BytesIO(b"substitute"), now=store_clock_now(store))
    assert store.get(name).read() == b"committed"
    assert list((store.root / ".tmp").iterdir()) == []


class RacingSource:
    """A body during whose upload another writer creates the same object."""

    def __init__(self, store: LocalDirectoryStore, name: str) -> None:
        self._store, self._name, self._sent = store, name, False

    def read(self, size: int = -1, /) -> bytes:
        if self._sent:
            return b""
        self._sent = True
        self._store.put(self._name, io.BytesIO(b"first writer"))
        return b"second writer"


def test_the_link_refuses_a_writer_that_lost_the_race(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    put = token_of(store.presign_put(name, size=len(b"second writer"), expires_s=60))
    with pytest.raises(ObjectExists):
        store.receive(put, RacingSource(store, name), now=store_clock_now(store))
    assert store.get(name).read() == b"first writer"
    assert list((store.root / ".tmp").iterdir()) == []


def test_completing_an_upload_cannot_replace_an_object(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    etag = store.receive(token_of(upload.part_urls[0]), io.BytesIO(b"0123456789"), now=0)
    store.put(name, io.BytesIO(b"already here"))
    with pytest.raises(ObjectExists):
        store.complete_multipart(name, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.get(name).read() == b"already here"
    assert list((store.root / ".tmp").iterdir()) == []


def test_a_part_may_be_sent_again_until_the_upload_completes(
    store: LocalDirectoryStore,
) -> None:
    name = new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    part = token_of(upload.part_urls[0])
    store.receive(part, io.BytesIO(b"9876543210"), now=0)
    etag = store.receive(part, io.BytesIO(b"0123456789"), now=0)
    store.complete_multipart(name, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.get(name).read() == b"0123456789"
    with pytest.raises(ObjectNotFound):
        store.receive(part, io.BytesIO(b"substitute"), now=0)
    assert store.get(name).read() == b"0123456789"


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_uploads_and_completions_record_their_digest(store: LocalDirectoryStore) -> None:
    """The digest computed while writing is reported by stat, so a commit need not re-read."""
    whole = new_object_name()
    put = token_of(store.presign_put(whole, size=4, expires_s=60))
    store.receive(put, io.BytesIO(b"body"), now=0)
    assert store.stat(whole).sha256 == _digest(b"body")

    joined = new_object_name()
    upload = store.start_multipart(joined, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    etag = store.receive(token_of(upload.part_urls[0]), io.BytesIO(b"0123456789"), now=0)
    store.complete_multipart(joined, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.stat(joined).sha256 == _digest(b"0123456789")


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


def test_the_losing_writer_leaves_the_winners_digest(store: LocalDirectoryStore) -> None:
    name = new_object_name()
    put = token_of(store.presign_put(name, size=len(b"second writer"), expires_s=60))
    with pytest.raises(ObjectExists):
        store.receive(put, RacingSource(store, name), now=store_clock_now(store))
    assert store.stat(name).sha256 == _digest(b"first writer")


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
