"""Small records through the key service (decision 0030): a ciphertext of at most
``INLINE_CIPHERTEXT_MAX`` bytes is carried by its commit and answered with its key, so a put is
two signed requests and a get one, with no storage request; the client still holds what it
receives to the committed size and digest before it decrypts a byte. Against the real key
service (local blob store).
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

import vault.format as fmt
from keyservice.catalog import uploads
from tests.sdk.conftest import Forward, Office, relay, substitute_ciphertext
from vault.client import Client, writing
from vault.format import IntegrityError

CONTENT_TYPE = "application/octet-stream"


def _plaintext_size(ciphertext_size: int) -> int:
    """The largest plaintext named a.bin whose ciphertext is at most ``ciphertext_size``."""

    def size_of(size: int) -> int:
        metadata = fmt.Metadata(file_name="a.bin", content_type=CONTENT_TYPE, size=size)
        return fmt.ciphertext_size(metadata, child_count=1)

    size = ciphertext_size
    while size_of(size) > ciphertext_size:
        size -= size_of(size) - ciphertext_size
    return size


AT_LIMIT = _plaintext_size(writing.INLINE_CIPHERTEXT_MAX)


class _Counted:
    """A client whose key service requests and storage requests are counted, by path."""

    def __init__(self, office: Office) -> None:
        self.calls: list[str] = []
        self.storage: list[str] = []

        def to_service(request: httpx.Request, forward: Forward) -> httpx.Response:
            self.calls.append(request.url.path)
            return forward(request)

        def to_storage(request: httpx.Request, forward: Forward) -> httpx.Response:
            self.storage.append(request.method)
            return forward(request)

        enrolled = office.enrol()
        self.child = office.child_of(enrolled)
        self.client = Client(
            enrolled.identity,
            transport=relay(to_service),
            blob_client=httpx.Client(transport=relay(to_storage)),
        )
        self.enrolled = enrolled

    def put(self, data: bytes) -> str:
        ref = self.client.put(
            child_ids=[self.child], category="photo", stream=io.BytesIO(data), file_name="a.bin"
        )
        return ref.record_id


@pytest.fixture
def counted(office: Office) -> _Counted:
    return _Counted(office)


def test_the_client_and_the_service_agree_on_the_limit() -> None:
    assert writing.INLINE_CIPHERTEXT_MAX == uploads.INLINE_CIPHERTEXT_MAX


def test_a_small_record_is_two_calls_to_put_one_to_get_and_none_to_storage(
    counted: _Counted, tmp_path: Path
) -> None:
    data = b"a small record " * 1000
    record_id = counted.put(data)
    assert [path.rsplit("/", 1)[-1] for path in counted.calls] == ["records", "commit"]
    counted.calls.clear()
    written = counted.client.get(record_id, dst=tmp_path)
    assert written.read_bytes() == data
    assert counted.calls == ["/v1/keys/release"]
    assert counted.storage == []


def test_a_record_at_the_limit_goes_inline_and_one_byte_over_uploads(
    counted: _Counted, tmp_path: Path
) -> None:
    at_limit = counted.put(bytes(AT_LIMIT))
    assert counted.storage == []
    over = counted.put(bytes(AT_LIMIT + 1))
    assert counted.storage == ["PUT"]
    assert counted.client.get(at_limit, dst=tmp_path / "a").read_bytes() == bytes(AT_LIMIT)
    assert counted.storage == ["PUT"]
    assert counted.client.get(over, dst=tmp_path / "b").read_bytes() == bytes(AT_LIMIT + 1)
    assert counted.storage == ["PUT", "GET"]


def test_a_substituted_small_ciphertext_is_refused_before_it_is_decrypted(
    office: Office, counted: _Counted, tmp_path: Path
) -> None:
    # The creator, who holds the record key, replaces the stored blob with another
    # well-formed ciphertext of the record: it authenticates on its own, so only the
    # committed digest, checked by the client on the bytes the release carried, catches it.
    before = office.objects()
    record_id = counted.put(b"what was committed")
    (stored,) = office.objects() - before
    stored.write_bytes(substitute_ciphertext(counted.client, record_id, b"what was committed"))
    target = tmp_path / "out.bin"
    with pytest.raises(IntegrityError):
        counted.client.get(record_id, dst=target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    assert counted.storage == []
