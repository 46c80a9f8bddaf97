"""vault.Client against the stand-in key service (tests/sdk/fake_keyservice.py).

These check what the SDK itself must get right: sealing context, streaming encryption into
single and multipart uploads, commit digests, decrypting to a temp file and renaming, range
reads, and problem answers turned into errors. The real service is exercised in tests/e2e.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import httpx
import pytest

import vault
import vault.format as fmt
from tests.sdk.conftest import enrolled_client
from tests.sdk.fake_keyservice import BASE, FakeKeyService
from vault.client import Client
from vault.errors import (
    AccessDenied,
    AuthenticationFailed,
    KeyServiceError,
    NotFound,
    RecordUnavailable,
    UploadError,
)
from vault.format import DEFAULT_CHUNK_SIZE, IntegrityError

MARKER = b"CAREVAULT-MARKER-7f3a"


def _plaintext(size: int) -> bytes:
    body = os.urandom(size)
    return MARKER + body[len(MARKER) :] if size >= len(MARKER) else body


def test_public_surface() -> None:
    assert vault.__all__ == ["Client", "DeviceIdentity", "load_identity", "save_identity"]
    assert vault.Client is Client
    import vault.client as sdk

    assert sorted(sdk.__all__) == [
        "Child",
        "Client",
        "DeviceIdentity",
        "DeviceInfo",
        "DeviceKeys",
        "Disclosure",
        "EnrolmentCode",
        "KeyFileInfo",
        "Me",
        "Notification",
        "Proposal",
        "RecordInfo",
        "RecordRef",
        "load_identity",
        "read_info",
        "save_identity",
    ]
    for name in sdk.__all__:
        assert getattr(sdk, name).__module__.startswith("vault.client.")


def test_enrol_and_whoami(client: Client) -> None:
    me = client.whoami()
    assert me.device_id == client.identity.device_id
    assert me.principal_id == client.identity.principal_id
    assert client.identity.audience == "test-audience"


def test_bad_enrolment_code_is_refused(service: FakeKeyService) -> None:
    with pytest.raises(AuthenticationFailed):
        Client.enrol(BASE, "not-a-code", "laptop", transport=service.transport())


@pytest.mark.parametrize("size", [0, 1, 5000, DEFAULT_CHUNK_SIZE, 2 * DEFAULT_CHUNK_SIZE + 17])
def test_put_get_round_trip(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "note.txt"
    data = _plaintext(size)
    source.write_bytes(data)
    ref = client.put(child_ids=[child], category="observation", path=source)
    assert ref.version == 1
    (stored,) = service.blobs.values()
    if size >= len(MARKER):
        assert MARKER not in stored
    assert b"note.txt" not in stored
    out = tmp_path / "out.txt"
    assert client.get(ref.record_id, dst=out) == out
    assert out.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()].count("out.txt") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_multipart_upload_streams_parts(service: FakeKeyService, tmp_path: Path) -> None:
    service.multipart_part_size = 5 * 1024 * 1024
    client = enrolled_client(service)
    child = client.create_child(display_name="Ben")
    data = _plaintext(12 * 1024 * 1024 + 3)
    source = tmp_path / "photo.ppm"
    source.write_bytes(data)
    ref = client.put(
        child_ids=[child], category="photo", path=source, content_type="image/x-portable-pixmap"
    )
    assert service.blob_puts == 3
    out = tmp_path / "copy.ppm"
    client.get(ref.record_id, dst=out)
    assert out.read_bytes() == data


def test_get_into_directory_uses_the_decrypted_file_name(
    client: Client, child: str, tmp_path: Path
) -> None:
    ref = client.put(
        child_ids=[child],
        category="medical",
        stream=io.BytesIO(b"letter"),
        file_name="gp-letter.pdf",
        content_type="application/pdf",
    )
    target = tmp_path / "downloads"
    target.mkdir()
    assert client.get(ref.record_id, dst=target) == target / "gp-letter.pdf"
    assert (target / "gp-letter.pdf").read_bytes() == b"letter"


def test_records_lists_decrypted_metadata(client: Client, child: str, tmp_path: Path) -> None:
    source = tmp_path / "first-words.txt"
    source.write_bytes(b"said 'duck'")
    ref = client.put(
        child_ids=[child], category="observation", path=source, content_type="text/plain"
    )
    (info,) = client.records(child)
    assert (info.record_id, info.version) == (ref.record_id, ref.version)
    assert info.file_name == "first-words.txt"
    assert info.content_type == "text/plain"
    assert info.size == len(b"said 'duck'")
    assert info.child_ids == (child,)


def test_amend_keeps_history(client: Client, child: str, tmp_path: Path) -> None:
    ref = client.put(
        child_ids=[child], category="incident", stream=io.BytesIO(b"v1"), file_name="incident.txt"
    )
    amended = client.amend(ref.record_id, stream=io.BytesIO(b"version two"))
    assert amended == vault.client.RecordRef(ref.record_id, 2)
    history = client.history(ref.record_id)
    assert [(h.version, h.size, h.file_name) for h in history] == [
        (1, 2, "incident.txt"),
        (2, 11, "incident.txt"),
    ]
    old, new = tmp_path / "old", tmp_path / "new"
    client.get(ref.record_id, version=1, dst=old)
    client.get(ref.record_id, dst=new)
    assert (old.read_bytes(), new.read_bytes()) == (b"v1", b"version two")
    assert [r.version for r in client.records(child)] == [2]


def test_range_reads_only_needed_chunks(
    service: FakeKeyService, child: str, client: Client
) -> None:
    data = _plaintext(3 * DEFAULT_CHUNK_SIZE + 100)
    ref = client.put(child_ids=[child], category="photo", stream=io.BytesIO(data))
    requested: list[str] = []
    original = service.handle

    def spy(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/blobs/") and request.method == "GET":
            requested.append(request.headers.get("Range", "whole"))
        return original(request)

    client._blobs = httpx.Client(transport=httpx.MockTransport(spy))
    start = DEFAULT_CHUNK_SIZE - 10
    assert client.get_range(ref.record_id, start=start, length=30) == data[start : start + 30]
    assert "whole" not in requested
    assert len(requested) == 2, "the header, then the two chunks the range touches in one read"
    end = len(data) - 5
    assert client.get_range(ref.record_id, start=end, length=5) == data[end:]


def test_altered_blob_fails_and_leaves_nothing(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path
) -> None:
    data = _plaintext(2 * DEFAULT_CHUNK_SIZE + 1)
    ref = client.put(child_ids=[child], category="photo", stream=io.BytesIO(data))
    (blob_id,) = service.blobs
    blob = bytearray(service.blobs[blob_id])
    blob[-100] ^= 0x01
    service.blobs[blob_id] = bytes(blob)
    out = tmp_path / "photo.bin"
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=out)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_download_and_is_replaced_by_a_good_one(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path
) -> None:
    data = _plaintext(DEFAULT_CHUNK_SIZE + 7)
    ref = client.put(child_ids=[child], category="photo", stream=io.BytesIO(data))
    out = tmp_path / "photo.bin"
    out.write_bytes(b"the file that was here before")
    (blob_id,) = service.blobs
    good = service.blobs[blob_id]
    service.blobs[blob_id] = good[:-1] + bytes([good[-1] ^ 0x01])
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=out)
    assert out.read_bytes() == b"the file that was here before"
    assert list(tmp_path.iterdir()) == [out]
    service.blobs[blob_id] = good
    assert client.get(ref.record_id, dst=out) == out
    assert out.read_bytes() == data
    assert list(tmp_path.iterdir()) == [out]


def test_truncated_blob_fails(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path
) -> None:
    ref = client.put(child_ids=[child], category="photo", stream=io.BytesIO(b"x" * 10_000))
    (blob_id,) = service.blobs
    service.blobs[blob_id] = service.blobs[blob_id][:-1]
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def _replace_blob_validly(service: FakeKeyService, plaintext: bytes) -> None:
    """Put a different, well-formed ciphertext of the only record where its blob was, as the
    record's creator could through a still-valid upload URL."""
    ((blob_id, original),) = service.blobs.items()
    (stored,) = service.versions.values()
    out = io.BytesIO()
    fmt.encrypt(
        record_key=stored.record_key,
        attributes=stored.attributes,
        metadata=fmt.Metadata(file_name="", content_type="text/plain", size=len(plaintext)),
        src=io.BytesIO(plaintext),
        dst=out,
    )
    assert out.getvalue() != original
    service.blobs[blob_id] = out.getvalue()


@pytest.mark.parametrize("new_size", [5000, 9000], ids=["same_size", "other_size"])
def test_blob_replaced_after_commit_fails_and_leaves_nothing(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path, new_size: int
) -> None:
    ref = client.put(child_ids=[child], category="observation", stream=io.BytesIO(b"a" * 5000))
    _replace_blob_validly(service, b"b" * new_size)
    (stored,) = service.versions.values()
    # The substitute authenticates on its own: only the committed size and digest catch it.
    substitute = service.blobs[stored.blob_id]
    fmt.decrypt(
        record_key=stored.record_key,
        attributes=stored.attributes,
        src=io.BytesIO(substitute),
        dst=io.BytesIO(),
    )
    with pytest.raises(IntegrityError) as caught:
        client.get(ref.record_id, dst=tmp_path / "note.txt")
    assert str(caught.value) == "record failed integrity check"
    assert caught.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delta", [-1, 1], ids=["released_smaller", "released_larger"])
def test_size_other_than_committed_fails_and_leaves_nothing(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path, delta: int
) -> None:
    ref = client.put(child_ids=[child], category="photo", stream=io.BytesIO(b"x" * 70_000))
    (stored,) = service.versions.values()
    stored.ciphertext_size += delta
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == []


def test_digest_other_than_committed_fails_and_leaves_nothing(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path
) -> None:
    ref = client.put(child_ids=[child], category="photo", stream=io.BytesIO(b"x" * 70_000))
    (stored,) = service.versions.values()
    stored.ciphertext_sha256 = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change",
    [
        {"ciphertext_sha256": None},
        {"ciphertext_size": None},
        {"ciphertext_sha256": "AAAA"},
        {"ciphertext_sha256": "not base64 at all!"},
        {"ciphertext_size": "70100"},
        {"ciphertext_size": 0},
    ],
    ids=["no_digest", "no_size", "short_digest", "not_base64", "size_as_text", "size_zero"],
)
def test_release_without_committed_digest_is_a_key_service_error(
    client: Client,
    service: FakeKeyService,
    child: str,
    tmp_path: Path,
    change: dict[str, object],
) -> None:
    ref = client.put(child_ids=[child], category="photo", stream=io.BytesIO(b"x" * 70_000))
    original = service.handle

    def answer(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if request.url.path != "/v1/keys/release":
            return response
        body = json.loads(response.content)
        for result in body["results"]:
            for field, value in change.items():
                if value is None:
                    result.pop(field, None)
                else:
                    result[field] = value
        return httpx.Response(200, json=body)

    unchecked = Client(
        client.identity,
        transport=httpx.MockTransport(answer),
        blob_client=httpx.Client(transport=service.transport()),
    )
    with pytest.raises(KeyServiceError, match="ciphertext"):
        unchecked.get(ref.record_id, version=1, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == []


def test_release_answer_for_another_request_does_not_open(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path
) -> None:
    """A release sealed under one request's nonce must not open as the answer to another."""
    ref = client.put(child_ids=[child], category="observation", stream=io.BytesIO(b"hi"))
    replayed: list[httpx.Response] = []
    original = service.handle

    def replay(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/keys/release":
            if not replayed:
                replayed.append(original(request))
            return replayed[0]
        return original(request)

    other = Client(
        client.identity,
        transport=httpx.MockTransport(replay),
        blob_client=httpx.Client(transport=service.transport()),
    )
    other.get(ref.record_id, version=1, dst=tmp_path / "first")
    with pytest.raises(vault.errors.SealError):
        other.get(ref.record_id, version=1, dst=tmp_path / "second")
    assert not (tmp_path / "second").exists()


def test_other_principal_is_refused(
    client: Client, service: FakeKeyService, child: str, tmp_path: Path
) -> None:
    ref = client.put(child_ids=[child], category="observation", stream=io.BytesIO(b"hi"))
    stranger = enrolled_client(service)
    with pytest.raises(RecordUnavailable):
        stranger.get(ref.record_id, version=1, dst=tmp_path / "x")
    assert stranger.records(child) == []
    assert list(tmp_path.iterdir()) == []


def test_deleted_record_is_unavailable(client: Client, child: str, tmp_path: Path) -> None:
    ref = client.put(child_ids=[child], category="observation", stream=io.BytesIO(b"hi"))
    client.delete(ref.record_id)
    with pytest.raises(RecordUnavailable):
        client.get(ref.record_id, version=1, dst=tmp_path / "x")
    with pytest.raises(NotFound):
        client.history(ref.record_id)


def test_failed_upload_is_not_committed(
    client: Client, service: FakeKeyService, child: str
) -> None:
    original = service.handle

    def storage_down(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/blobs/"):
            return httpx.Response(503)
        return original(request)

    client._blobs = httpx.Client(transport=httpx.MockTransport(storage_down))
    with pytest.raises(UploadError):
        client.put(child_ids=[child], category="observation", stream=io.BytesIO(b"x" * 5000))
    assert not any(v.committed for v in service.versions.values())
    assert client.records(child) == []


def test_problem_details_become_errors(client: Client) -> None:
    with pytest.raises(AccessDenied, match="only an admin may add people") as caught:
        client.create_principal(kind="staff", display_name="Eve")
    assert caught.value.status == 403
    assert caught.value.problem["title"] == "only an admin may add people"


def test_unreachable_service_is_a_key_service_error(client: Client) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    offline = Client(client.identity, transport=httpx.MockTransport(down))
    with pytest.raises(KeyServiceError, match="Cannot reach the key service"):
        offline.whoami()


def test_put_needs_exactly_one_source(client: Client, child: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        client.put(child_ids=[child], category="observation")
    with pytest.raises(ValueError):
        client.put(
            child_ids=[child], category="observation", path=tmp_path / "a", stream=io.BytesIO(b"")
        )


def test_non_seekable_stream_is_spooled(client: Client, child: str, tmp_path: Path) -> None:
    read, write = os.pipe()
    os.write(write, b"from a pipe")
    os.close(write)
    with os.fdopen(read, "rb", buffering=0) as pipe:
        ref = client.put(
            child_ids=[child], category="observation", stream=pipe, file_name="pipe.txt"
        )
    client.get(ref.record_id, dst=tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"from a pipe"
