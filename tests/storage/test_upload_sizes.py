"""An upload URL takes a body of exactly the size it was issued for, on every store (security
review, finding 6): the local store and the fake refuse any other size and keep nothing; an S3
URL signs its Content-Length, so S3 refuses any other (checked as S3 checks it: moto does
not check signatures)."""

from __future__ import annotations

import pytest

from tests.servers import S3_SECRET_KEY
from tests.storage.conftest import Backend, random_bytes
from tests.storage.sigv4 import signature_holds, signed_headers
from vault.storage import (
    MIN_PART_SIZE,
    CompletedPart,
    MultipartUpload,
    ObjectNotFound,
    S3Store,
    WrongSize,
    new_object_name,
)

DECLARED = 5
LARGE = 8 * 1024 * 1024


def _refused_unless_exact(backend: Backend, url: str, size: int) -> None:
    """A PUT of another size than ``size`` through ``url`` is refused (or would be, on S3)."""
    if isinstance(backend.store, S3Store):
        assert "content-length" in signed_headers(url)

        def holds(length: int) -> bool:
            headers = {"Content-Length": str(length)}
            return signature_holds(url, method="PUT", headers=headers, secret_key=S3_SECRET_KEY)

        assert holds(size)
        for other in (size + 1, size - 1, LARGE):
            assert not holds(other)
        return
    for other in (size + 1, size - 1, LARGE):
        with pytest.raises(WrongSize) as refused:
            backend.client.put(url, random_bytes(other))
        assert refused.value.larger is (other > size)


def test_a_put_url_takes_only_its_declared_size(backend: Backend) -> None:
    name = new_object_name()
    url = backend.store.presign_put(name, size=DECLARED, expires_s=60)
    _refused_unless_exact(backend, url, DECLARED)
    with pytest.raises(ObjectNotFound):
        backend.store.stat(name)
    backend.client.put(url, b"12345")
    assert backend.store.stat(name).size == DECLARED


def test_each_part_url_takes_only_its_parts_size(backend: Backend) -> None:
    name = new_object_name()
    data = random_bytes(MIN_PART_SIZE + 10)
    upload: MultipartUpload = backend.store.start_multipart(
        name, size=len(data), part_size=MIN_PART_SIZE, expires_s=60
    )
    _refused_unless_exact(backend, upload.part_urls[0], MIN_PART_SIZE)
    _refused_unless_exact(backend, upload.part_urls[1], 10)
    parts = [
        CompletedPart(1, backend.client.put(upload.part_urls[0], data[:MIN_PART_SIZE])),
        CompletedPart(2, backend.client.put(upload.part_urls[1], data[MIN_PART_SIZE:])),
    ]
    backend.store.complete_multipart(name, upload_id=upload.upload_id, parts=parts)
    assert backend.store.sha256_if_size(name, size=len(data)) is not None
