"""The two ways a record travels (vault/client/blobs.py, ``SMALL_CIPHERTEXT_SIZE``): a small
ciphertext is encrypted or received whole on the calling thread, a larger one streams through
threads. Both must keep the same guarantees, so every check here runs on a record just under
the threshold and one just over it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest

import vault.format as fmt
from tests.sdk.conftest import Forward, Office, relay, substitute_ciphertext
from vault.client import Client
from vault.client.blobs import SMALL_CIPHERTEXT_SIZE
from vault.errors import Conflict, TransferError
from vault.format import IntegrityError

CONTENT_TYPE = "application/octet-stream"
PIECE = 64 * 1024
PART_SIZE = 5 * 1024 * 1024  # tests/sdk/conftest.py: IN_PARTS


def _ciphertext_size(size: int) -> int:
    metadata = fmt.Metadata(file_name="", content_type=CONTENT_TYPE, size=size)
    return fmt.ciphertext_size(metadata, child_count=1)


def _plaintext_size(ciphertext_size: int) -> int:
    """The largest plaintext whose ciphertext is at most ``ciphertext_size``."""
    size = ciphertext_size
    while _ciphertext_size(size) > ciphertext_size:
        size -= _ciphertext_size(size) - ciphertext_size
    return size


AT_THRESHOLD = _plaintext_size(SMALL_CIPHERTEXT_SIZE)
OVER_THRESHOLD = AT_THRESHOLD + 1
SIZES = pytest.mark.parametrize("size", [AT_THRESHOLD, OVER_THRESHOLD], ids=["small", "streamed"])


@pytest.fixture
def threads_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads started from now on."""
    started: list[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread.name)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def _put(client: Client, child: str, data: bytes, **kwargs: Any) -> str:
    stream = io.BytesIO(data)
    return client.put(child_ids=[child], category="photo", stream=stream, **kwargs).record_id


def _stored(office: Office, client: Client, child: str, data: bytes) -> tuple[str, Path]:
    """Put ``data`` as a record; its id and the file its ciphertext was stored in."""
    ref, path = office.stored(
        lambda: client.put(child_ids=[child], category="photo", stream=io.BytesIO(data))
    )
    return ref.record_id, path


def _blobs_through(client: Client, handler: Callable[[httpx.Request, Forward], Any]) -> None:
    """Route the client's storage requests through ``handler(request, forward)``."""
    client._blobs = httpx.Client(transport=relay(handler))


def test_threshold_sizes_straddle_the_threshold() -> None:
    assert _ciphertext_size(AT_THRESHOLD) == SMALL_CIPHERTEXT_SIZE
    assert _ciphertext_size(OVER_THRESHOLD) == SMALL_CIPHERTEXT_SIZE + 1


@SIZES
def test_round_trip_takes_threads_only_when_streamed(
    client: Client, child: str, tmp_path: Path, threads_started: list[str], size: int
) -> None:
    data = os.urandom(size)
    record_id = _put(client, child, data)
    put_threads = len(threads_started)
    out = tmp_path / "out.bin"
    client.get(record_id, dst=out)
    assert out.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    if size <= AT_THRESHOLD:
        assert threads_started == [], "a small record must take no extra thread"
    else:
        assert put_threads == 2, "the encryptor's pipe and the MD5 thread"
        assert len(threads_started) == 2, "a download hashes and decrypts on the caller's thread"


@SIZES
def test_progress_counts_every_ciphertext_byte(
    client: Client, child: str, tmp_path: Path, size: int
) -> None:
    sent: list[int] = []
    received: list[int] = []
    record_id = _put(client, child, os.urandom(size), progress=sent.append)
    client.get(record_id, dst=tmp_path / "out.bin", progress=received.append)
    assert sum(sent) == sum(received) == _ciphertext_size(size)


@pytest.mark.parametrize(
    ("size", "in_parts"),
    [
        (AT_THRESHOLD, False),
        (OVER_THRESHOLD, False),
        (200_000, True),
        (2 * PART_SIZE + 100_000, True),
    ],
    ids=["small", "streamed", "small_multipart", "streamed_multipart"],
)
def test_commit_names_the_digests_of_the_stored_bytes(
    request: pytest.FixtureRequest,
    threads_started: list[str],
    size: int,
    in_parts: bool,
) -> None:
    """The BLAKE3 digest and the per-piece MD5s must come from the bytes that were uploaded
    (docs/decisions/0008-commit-checks-the-store-etag.md). A small record that the service
    asks to upload in parts still streams them."""
    office: Office = request.getfixturevalue("office_in_parts" if in_parts else "office")
    puts: list[httpx.Request] = []
    enrolled = office.enrol(
        blob_client=httpx.Client(event_hooks={"request": [puts.append]}),
    )
    child = office.child_of(enrolled)
    commits: list[dict[str, Any]] = []

    def spy(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.url.path.endswith("/commit"):
            commits.append(json.loads(request.content))
        return forward(request)

    client = Client(enrolled.identity, transport=relay(spy), blob_client=enrolled._blobs)
    threads_started.clear()
    _record_id, stored = _stored(office, client, child, os.urandom(size))
    blob = stored.read_bytes()
    pieces = (
        [blob[at : at + PART_SIZE] for at in range(0, len(blob), PART_SIZE)] if in_parts else [blob]
    )
    (commit,) = commits
    assert commit["ciphertext_size"] == len(blob)
    assert commit["ciphertext_digest_alg"] == "blake3"
    assert _unb64(commit["ciphertext_digest"]) == blake3.blake3(blob).digest()
    assert "ciphertext_sha256" not in commit
    md5s = [hashlib.md5(piece, usedforsecurity=False).digest() for piece in pieces]
    assert [_unb64(md5) for md5 in commit["part_md5s"]] == md5s
    assert len([put for put in puts if put.method == "PUT"]) == len(pieces)
    assert (threads_started == []) == (size <= AT_THRESHOLD and not in_parts)
    enrolled.close()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@SIZES
def test_upload_the_commit_refuses_is_an_error(client: Client, child: str, size: int) -> None:
    """Storage that keeps other bytes than were sent: the commit's digest catches it."""

    def corrupt(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.method == "PUT":
            body = bytearray(request.content)
            body[len(body) // 2] ^= 0x01
            request = httpx.Request(
                "PUT", request.url, headers=request.headers, content=bytes(body)
            )
        return forward(request)

    _blobs_through(client, corrupt)
    with pytest.raises(Conflict):
        _put(client, child, os.urandom(size))
    assert client.records(child) == []


def _flip_one_bit(blob: bytes) -> bytes:
    return blob[:-100] + bytes([blob[-100] ^ 0x01]) + blob[-99:]


TAMPERINGS = pytest.mark.parametrize(
    ("tamper", "cause"),
    [
        ("replace", "blake3 digest differs"),
        ("flip", None),  # the streamed path's decryptor may see it first
        ("truncate", "fewer bytes"),
        ("extend", "more bytes"),
    ],
)


def _tampered(client: Client, record_id: str, blob: bytes, tamper: str, size: int) -> bytes:
    if tamper == "replace":
        # A different ciphertext of the same size that authenticates as the record, as its
        # creator could make with the record key: only the committed digest tells it apart.
        return substitute_ciphertext(client, record_id, os.urandom(size), content_type=CONTENT_TYPE)
    if tamper == "flip":
        return _flip_one_bit(blob)
    if tamper == "truncate":
        return blob[:-1]
    return blob + b"\x00"


@SIZES
@TAMPERINGS
def test_tampered_blob_fails_and_leaves_nothing(
    office: Office,
    client: Client,
    child: str,
    tmp_path: Path,
    size: int,
    tamper: str,
    cause: str | None,
) -> None:
    record_id, stored = _stored(office, client, child, os.urandom(size))
    stored.write_bytes(_tampered(client, record_id, stored.read_bytes(), tamper, size))
    out = tmp_path / "photo.bin"
    out.write_bytes(b"the file that was here before")
    with pytest.raises(IntegrityError) as caught:
        client.get(record_id, dst=out)
    assert str(caught.value) == "record failed integrity check"
    if cause is not None:
        assert cause in str(caught.value.__cause__)
    assert out.read_bytes() == b"the file that was here before"
    assert list(tmp_path.iterdir()) == [out]


@SIZES
def test_endless_body_is_refused_without_reading_it(
    office: Office, client: Client, child: str, tmp_path: Path, size: int
) -> None:
    record_id, stored = _stored(office, client, child, os.urandom(size))
    blob = stored.read_bytes()
    served = 0

    def endless() -> Iterator[bytes]:
        nonlocal served
        body = blob + bytes(32 << 20)  # where a check that reads on would end
        for at in range(0, len(body), PIECE):
            served += len(body[at : at + PIECE])
            yield body[at : at + PIECE]

    def answer(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=endless())
        return forward(request)

    _blobs_through(client, answer)
    with pytest.raises(IntegrityError) as caught:
        client.get(record_id, dst=tmp_path / "photo.bin")
    assert "more bytes" in str(caught.value.__cause__)
    assert served <= len(blob) + PIECE
    assert list(tmp_path.iterdir()) == []


@SIZES
def test_interrupted_or_refused_download_is_a_transfer_error(
    office: Office, client: Client, child: str, tmp_path: Path, size: int
) -> None:
    record_id, stored = _stored(office, client, child, os.urandom(size))
    blob = stored.read_bytes()

    def cut_off() -> Iterator[bytes]:
        yield blob[: len(blob) // 2]
        raise httpx.ReadError("connection reset")

    answers = [httpx.Response(200, content=cut_off()), httpx.Response(503)]

    def answer(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.method == "GET":
            return answers.pop(0)
        return forward(request)

    _blobs_through(client, answer)
    with pytest.raises(TransferError, match=r"^the download from storage was interrupted$"):
        client.get(record_id, dst=tmp_path / "photo.bin")
    with pytest.raises(TransferError, match=r"^storage refused the download \(HTTP 503\)$"):
        client.get(record_id, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == []
