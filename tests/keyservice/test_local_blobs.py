"""The key service's serving of the local store's URLs (``keyservice.localblobs``): a token
is checked, then only the object or part it names is written or read, once, at its exact size.
No server; the HTTP route's own checks are in test_blobs.py and test_upload_bounds.py."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from keyservice.localblobs import BlobServer
from vault.storage import (
    BLOB_ROUTE,
    MIN_PART_SIZE,
    BlobGrant,
    CompletedPart,
    InvalidObjectName,
    InvalidToken,
    LocalDirectoryStore,
    ObjectExists,
    ObjectNotFound,
    TokenSigner,
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


@pytest.fixture
def server(store: LocalDirectoryStore) -> BlobServer:
    return BlobServer(store, TokenSigner(KEY))


def token_of(url: str) -> str:
    assert url.startswith(BASE + BLOB_ROUTE)
    return url.removeprefix(BASE + BLOB_ROUTE)


def store_clock_now(store: LocalDirectoryStore) -> float:
    return store._clock()


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_a_url_cannot_lead_outside_through_a_symlinked_object(
    server: BlobServer, store: LocalDirectoryStore, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret outside the store")
    name = new_object_name()
    (store.root / name[:2]).mkdir()
    (store.root / name[:2] / name).symlink_to(target)
    token = token_of(store.presign_get(name, expires_s=60))
    with pytest.raises(InvalidObjectName):
        server.send(token, now=store_clock_now(store))
    assert target.read_bytes() == b"secret outside the store"


def test_upload_of_one_object_cannot_complete_another(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    name, other = new_object_name(), new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    etag = server.receive(token_of(upload.part_urls[0]), io.BytesIO(b"0123456789"), now=0)
    with pytest.raises(ObjectNotFound):
        store.complete_multipart(other, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    store.complete_multipart(name, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.get(name).read() == b"0123456789"


def test_short_middle_part_is_refused(server: BlobServer, store: LocalDirectoryStore) -> None:
    name = new_object_name()
    upload = store.start_multipart(
        name, size=MIN_PART_SIZE + 1, part_size=MIN_PART_SIZE, expires_s=60
    )
    with pytest.raises(WrongSize):
        server.receive(token_of(upload.part_urls[0]), io.BytesIO(b"short"), now=0)
    second = server.receive(token_of(upload.part_urls[1]), io.BytesIO(b"x"), now=0)
    with pytest.raises(UploadError):
        store.complete_multipart(
            name,
            upload_id=upload.upload_id,
            parts=[CompletedPart(1, second), CompletedPart(2, second)],
        )
    assert list((store.root / ".tmp").iterdir()) == []


def test_urls_expire(server: BlobServer, store: LocalDirectoryStore, clock: Clock) -> None:
    name = new_object_name()
    put = token_of(store.presign_put(name, size=4, expires_s=30))
    get = token_of(store.presign_get(name, expires_s=30))
    server.receive(put, io.BytesIO(b"data"), now=clock.now + 29)
    assert server.send(get, now=clock.now + 29)[0].read() == b"data"
    with pytest.raises(InvalidToken):
        server.receive(put, io.BytesIO(b"late"), now=clock.now + 30)
    with pytest.raises(InvalidToken):
        server.send(get, now=clock.now + 30)
    assert store.get(name).read() == b"data"


def test_get_token_cannot_write_and_put_token_cannot_read(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"data"))
    get = token_of(store.presign_get(name, expires_s=30))
    put = token_of(store.presign_put(name, size=4, expires_s=30))
    with pytest.raises(InvalidToken):
        server.receive(get, io.BytesIO(b"overwrite"), now=store_clock_now(store))
    with pytest.raises(InvalidToken):
        server.send(put, now=store_clock_now(store))
    assert store.get(name).read() == b"data"


def test_part_token_is_not_a_whole_object_token(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    name = new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    with pytest.raises(InvalidToken):
        server.object_name(token_of(upload.part_urls[0]), "PUT", now=store_clock_now(store))


def test_token_from_another_store_is_refused(
    server: BlobServer, tmp_path: Path, store: LocalDirectoryStore
) -> None:
    other = LocalDirectoryStore(tmp_path / "other", base_url=BASE, token_key=b"o" * 32)
    name = new_object_name()
    store.put(name, io.BytesIO(b"data"))
    foreign = token_of(other.presign_get(name, expires_s=60))
    with pytest.raises(InvalidToken):
        server.send(foreign, now=store_clock_now(store))


def test_object_name_of_a_token(server: BlobServer) -> None:
    name = new_object_name()
    token = TokenSigner(KEY).sign(BlobGrant(name, "GET", 100))
    assert server.object_name(token, "GET", now=99) == name
    with pytest.raises(InvalidToken):
        server.object_name(token, "GET", now=100)


def test_send_reports_the_size(server: BlobServer, store: LocalDirectoryStore) -> None:
    name = new_object_name()
    store.put(name, io.BytesIO(b"x" * 1234))
    stream, size = server.send(
        token_of(store.presign_get(name, expires_s=5)), now=store_clock_now(store)
    )
    with stream:
        assert size == 1234


def test_upload_url_cannot_replace_a_written_object(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    """An upload URL that is still valid after its version was committed must not swap the
    committed blob (security review, finding 3)."""
    name = new_object_name()
    put = token_of(store.presign_put(name, size=9, expires_s=3600))
    server.receive(put, io.BytesIO(b"committed"), now=store_clock_now(store))
    with pytest.raises(ObjectExists):
        server.receive(put, io.BytesIO(b"substitute"), now=store_clock_now(store))
    other_url = token_of(store.presign_put(name, size=9, expires_s=3600))
    with pytest.raises(ObjectExists):
        server.receive(other_url, io.BytesIO(b"substitute"), now=store_clock_now(store))
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


def _lose_a_race(server: BlobServer, store: LocalDirectoryStore) -> str:
    """Send a body through an upload URL while another writer creates the object; refused,
    the object's name."""
    name = new_object_name()
    put = token_of(store.presign_put(name, size=len(b"second writer"), expires_s=60))
    with pytest.raises(ObjectExists):
        server.receive(put, RacingSource(store, name), now=store_clock_now(store))
    return name


def test_the_link_refuses_a_writer_that_lost_the_race(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    name = _lose_a_race(server, store)
    assert store.get(name).read() == b"first writer"
    assert list((store.root / ".tmp").iterdir()) == []


def test_completing_an_upload_cannot_replace_an_object(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    name = new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    etag = server.receive(token_of(upload.part_urls[0]), io.BytesIO(b"0123456789"), now=0)
    store.put(name, io.BytesIO(b"already here"))
    with pytest.raises(ObjectExists):
        store.complete_multipart(name, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.get(name).read() == b"already here"
    assert list((store.root / ".tmp").iterdir()) == []


def test_a_part_may_be_sent_again_until_the_upload_completes(
    server: BlobServer,
    store: LocalDirectoryStore,
) -> None:
    name = new_object_name()
    upload = store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    part = token_of(upload.part_urls[0])
    server.receive(part, io.BytesIO(b"9876543210"), now=0)
    etag = server.receive(part, io.BytesIO(b"0123456789"), now=0)
    store.complete_multipart(name, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.get(name).read() == b"0123456789"
    with pytest.raises(ObjectNotFound):
        server.receive(part, io.BytesIO(b"substitute"), now=0)
    assert store.get(name).read() == b"0123456789"


def test_uploads_and_completions_record_their_digest(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    """The digest computed while writing is reported by stat, so a commit need not re-read."""
    whole = new_object_name()
    put = token_of(store.presign_put(whole, size=4, expires_s=60))
    server.receive(put, io.BytesIO(b"body"), now=0)
    assert store.stat(whole).sha256 == _digest(b"body")

    joined = new_object_name()
    upload = store.start_multipart(joined, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    etag = server.receive(token_of(upload.part_urls[0]), io.BytesIO(b"0123456789"), now=0)
    store.complete_multipart(joined, upload_id=upload.upload_id, parts=[CompletedPart(1, etag)])
    assert store.stat(joined).sha256 == _digest(b"0123456789")


def test_the_losing_writer_leaves_the_winners_digest(
    server: BlobServer, store: LocalDirectoryStore
) -> None:
    name = _lose_a_race(server, store)
    assert store.stat(name).sha256 == _digest(b"first writer")
