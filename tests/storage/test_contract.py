"""The BlobStore contract, run against the memory fake, a local directory and moto's S3."""

from __future__ import annotations

import contextlib
import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.storage.conftest import Backend, random_bytes, sha256
from vault.format import digest_of
from vault.storage import (
    MIN_PART_SIZE,
    CompletedPart,
    InvalidObjectName,
    ObjectNotFound,
    StorageError,
    UploadError,
    new_object_name,
)


def test_presigned_put_then_stat_sha256_get(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(70_000)
    backend.client.put(backend.store.presign_put(name, size=len(data), expires_s=60), data)

    info = backend.store.stat(name)
    assert info.size == len(data)
    assert info.sha256 in (None, sha256(data))
    assert abs(info.modified_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert backend.store.sha256(name) == sha256(data)
    with contextlib.closing(backend.store.get(name)) as stream:
        assert stream.read() == data
    assert backend.client.get(backend.store.presign_get(name, expires_s=60)) == data


def test_put_replaces_and_get_streams(backend: Backend) -> None:
    name = new_object_name()
    backend.store.put(name, io.BytesIO(b"first"))
    backend.store.put(name, io.BytesIO(b"second"))
    with contextlib.closing(backend.store.get(name)) as stream:
        assert stream.read(3) == b"sec"
        assert stream.read() == b"ond"


def test_empty_object(backend: Backend) -> None:
    name = new_object_name()
    backend.store.put(name, io.BytesIO(b""))
    assert backend.store.stat(name).size == 0
    assert backend.store.sha256(name) == sha256(b"")


def test_missing_object_is_not_found(backend: Backend) -> None:
    name = new_object_name()
    with pytest.raises(ObjectNotFound):
        backend.store.stat(name)
    with pytest.raises(ObjectNotFound):
        backend.store.sha256(name)
    with pytest.raises(ObjectNotFound):
        backend.store.get(name).read()


def test_delete_removes_and_is_idempotent(backend: Backend) -> None:
    name = new_object_name()
    backend.store.put(name, io.BytesIO(b"x"))
    backend.store.delete(name)
    with pytest.raises(ObjectNotFound):
        backend.store.stat(name)
    backend.store.delete(name)
    assert name not in set(backend.store.list_names())


def test_deleting_an_object_never_written_is_done(backend: Backend) -> None:
    """A sweep deletes the object of every abandoned version, uploaded or not (finding 9)."""
    name = new_object_name()
    backend.store.delete(name)
    with pytest.raises(ObjectNotFound):
        backend.store.stat(name)
    assert name not in set(backend.store.list_names())


def test_list_names_with_prefix(backend: Backend) -> None:
    names = {
        "ab" + new_object_name()[2:],
        "ab" + new_object_name()[2:],
        "cd" + new_object_name()[2:],
    }
    for name in names:
        backend.store.put(name, io.BytesIO(b"x"))
    assert set(backend.store.list_names()) == names
    assert set(backend.store.list_names("ab")) == {n for n in names if n.startswith("ab")}
    one = sorted(names)[0]
    assert list(backend.store.list_names(one)) == [one]
    with pytest.raises(InvalidObjectName):
        list(backend.store.list_names("../"))


def _send_parts(
    backend: Backend, name: str, data: bytes, *, count: int | None = None
) -> tuple[str, list[str]]:
    """Start a multipart upload of ``data`` to ``name`` and send its first ``count`` parts (all
    by default): the upload's id and the ETags of the parts sent."""
    upload = backend.store.start_multipart(
        name, size=len(data), part_size=MIN_PART_SIZE, expires_s=120
    )
    etags = []
    for index, url in enumerate(upload.part_urls[:count]):
        chunk = data[index * upload.part_size : (index + 1) * upload.part_size]
        etags.append(backend.client.put(url, chunk))
    return upload.upload_id, etags


def _upload_in_parts(backend: Backend, name: str, data: bytes) -> list[CompletedPart]:
    upload_id, etags = _send_parts(backend, name, data)
    parts = [CompletedPart(number, etag) for number, etag in enumerate(etags, start=1)]
    backend.store.complete_multipart(name, upload_id=upload_id, parts=parts)
    return parts


def test_multipart_upload_through_part_urls(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(2 * MIN_PART_SIZE + 12_345)
    parts = _upload_in_parts(backend, name, data)
    assert len(parts) == 3
    assert backend.store.stat(name).size == len(data)
    assert backend.store.sha256(name) == sha256(data)
    assert backend.client.get(backend.store.presign_get(name, expires_s=60)) == data


def test_multipart_with_a_wrong_etag_fails(backend: Backend) -> None:
    name = new_object_name()
    upload_id, (first, second) = _send_parts(backend, name, random_bytes(MIN_PART_SIZE + 10))
    with pytest.raises(UploadError):
        backend.store.complete_multipart(
            name, upload_id=upload_id, parts=[CompletedPart(1, first), CompletedPart(2, first)]
        )
    with pytest.raises(UploadError):
        backend.store.complete_multipart(
            name, upload_id=upload_id, parts=[CompletedPart(2, second), CompletedPart(1, first)]
        )
    with pytest.raises(ObjectNotFound):
        backend.store.stat(name)


def test_multipart_with_a_missing_part_fails(backend: Backend) -> None:
    name = new_object_name()
    upload_id, (first,) = _send_parts(backend, name, random_bytes(MIN_PART_SIZE + 10), count=1)
    with pytest.raises(StorageError):
        backend.store.complete_multipart(
            name, upload_id=upload_id, parts=[CompletedPart(1, first), CompletedPart(2, first)]
        )
    with pytest.raises(ObjectNotFound):
        backend.store.stat(name)


def test_aborted_multipart_cannot_complete(backend: Backend) -> None:
    name = new_object_name()
    upload_id, (first,) = _send_parts(backend, name, random_bytes(MIN_PART_SIZE + 1), count=1)
    backend.store.abort_multipart(name, upload_id=upload_id)
    with pytest.raises(StorageError):
        backend.store.complete_multipart(name, upload_id=upload_id, parts=[CompletedPart(1, first)])
    with pytest.raises(ObjectNotFound):
        backend.store.stat(name)


def test_multipart_plan_must_fit_s3_limits(backend: Backend) -> None:
    name = new_object_name()
    with pytest.raises(ValueError):
        backend.store.start_multipart(name, size=100, part_size=1024, expires_s=60)
    with pytest.raises(ValueError):
        backend.store.start_multipart(
            name, size=10_001 * MIN_PART_SIZE, part_size=MIN_PART_SIZE, expires_s=60
        )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../x",
        "../" + "a" * 29,
        "/etc/passwd",
        "a" * 31,
        "a" * 33,
        "A" * 32,
        "a" * 31 + "\x00",
        "a" * 32 + "\n",
        "a" * 15 + "/" + "a" * 16,
        "٠" * 32,  # Arabic-Indic digits: \d would match them, the pattern must not
    ],
)
def test_malformed_names_are_refused_everywhere(backend: Backend, bad: str) -> None:
    store = backend.store
    calls = [
        lambda: store.presign_put(bad, size=1, expires_s=60),
        lambda: store.presign_get(bad, expires_s=60),
        lambda: store.start_multipart(bad, size=1, part_size=MIN_PART_SIZE, expires_s=60),
        lambda: store.stat(bad),
        lambda: store.sha256(bad),
        lambda: store.delete(bad),
        lambda: store.put(bad, io.BytesIO(b"x")),
        lambda: store.get(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidObjectName):
            call()


def test_unfinished_uploads_are_listed_for_the_sweep(backend: Backend) -> None:
    name = new_object_name()
    upload = backend.store.start_multipart(name, size=10, part_size=MIN_PART_SIZE, expires_s=60)
    finished = new_object_name()
    _upload_in_parts(backend, finished, b"0123456789")

    later = datetime.now(UTC) + timedelta(minutes=5)
    pending = [u for u in backend.store.list_uploads(started_before=later)]
    assert [(u.name, u.upload_id) for u in pending] == [(name, upload.upload_id)]
    assert pending[0].started_at < later
    if backend.name != "s3":  # moto reports every upload as initiated in 2010
        earlier = datetime.now(UTC) - timedelta(minutes=5)
        assert list(backend.store.list_uploads(started_before=earlier)) == []

    backend.store.abort_multipart(name, upload_id=upload.upload_id)
    assert list(backend.store.list_uploads(started_before=later)) == []


def test_sha256_if_size_answers_only_for_the_right_size(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(70_000)
    backend.client.put(backend.store.presign_put(name, size=len(data), expires_s=60), data)
    assert backend.store.sha256_if_size(name, size=len(data)) == sha256(data)
    assert backend.store.sha256_if_size(name, size=len(data) - 1) is None
    assert backend.store.sha256_if_size(name, size=len(data) + 1) is None
    with pytest.raises(ObjectNotFound):
        backend.store.sha256_if_size(new_object_name(), size=1)


def test_sha256_if_size_of_a_completed_multipart_upload(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(MIN_PART_SIZE + 12_345)
    _upload_in_parts(backend, name, data)
    assert backend.store.sha256_if_size(name, size=len(data)) == sha256(data)


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


# Stores that keep the MD5s of what they received (S3's ETag) answer True for the right ones;
# the others keep none and always answer False, so that a commit reads the object instead.
KEEPS_MD5S = {"s3"}


def test_md5s_match_a_single_put_only_with_its_size_and_md5(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(70_000)
    backend.client.put(backend.store.presign_put(name, size=len(data), expires_s=60), data)

    def match(size: int, md5s: list[bytes], multipart: bool = False) -> bool:
        return backend.store.md5s_match(name, size=size, part_md5s=md5s, multipart=multipart)

    assert match(len(data), [_md5(data)]) is (backend.name in KEEPS_MD5S)
    assert match(len(data) - 1, [_md5(data)]) is False
    assert match(len(data), [_md5(data[:-1])]) is False
    assert match(len(data), []) is False
    assert match(len(data), [_md5(data), _md5(data)]) is False
    assert match(len(data), [_md5(data)], multipart=True) is False
    with pytest.raises(ObjectNotFound):
        backend.store.md5s_match(
            new_object_name(), size=len(data), part_md5s=[_md5(data)], multipart=False
        )


def test_md5s_match_a_multipart_upload_only_with_each_part_in_order(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(2 * MIN_PART_SIZE + 12_345)
    _upload_in_parts(backend, name, data)
    pieces = [data[at : at + MIN_PART_SIZE] for at in range(0, len(data), MIN_PART_SIZE)]
    md5s = [_md5(piece) for piece in pieces]
    keeps = backend.name in KEEPS_MD5S
    assert backend.store.md5s_match(name, size=len(data), part_md5s=md5s, multipart=True) is keeps
    for wrong_md5s, multipart in (
        (md5s[::-1], True),
        (md5s[:-1], True),
        ([_md5(data)], True),
        ([_md5(data)], False),
        (md5s, False),
    ):
        assert (
            backend.store.md5s_match(
                name, size=len(data), part_md5s=wrong_md5s, multipart=multipart
            )
            is False
        )


@pytest.mark.parametrize("alg", ["blake3", "sha256"])
def test_digest_if_size_answers_in_the_algorithm_asked(backend: Backend, alg: str) -> None:
    name = new_object_name()
    data = random_bytes(70_000)
    backend.client.put(backend.store.presign_put(name, size=len(data), expires_s=60), data)
    assert backend.store.digest_if_size(name, size=len(data), alg=alg) == (
        digest_of(alg, data).value  # type: ignore[arg-type]
    )
    assert backend.store.digest_if_size(name, size=len(data) + 1, alg=alg) is None
    with pytest.raises(ObjectNotFound):
        backend.store.digest_if_size(new_object_name(), size=1, alg=alg)


def test_digest_if_size_of_a_completed_multipart_upload_in_blake3(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(MIN_PART_SIZE + 12_345)
    _upload_in_parts(backend, name, data)
    assert backend.store.digest_if_size(name, size=len(data), alg="blake3") == (
        digest_of("blake3", data).value
    )


def test_digest_if_size_refuses_an_unknown_algorithm(backend: Backend) -> None:
    name = new_object_name()
    backend.client.put(backend.store.presign_put(name, size=3, expires_s=60), b"abc")
    with pytest.raises(ValueError, match="unknown ciphertext digest algorithm"):
        backend.store.digest_if_size(name, size=3, alg="md5")
