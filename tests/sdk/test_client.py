"""vault.Client against the real key service (tests/sdk/conftest.py).

These check what the SDK itself must get right: sealing context, streaming encryption into
single and multipart uploads, commit digests, decrypting to a temp file and renaming, range
reads, and problem answers turned into errors. Who may read what is the service's rule,
tested in tests/keyservice and tests/e2e.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import vault
from tests.sdk.conftest import Forward, Office, relay, substitute_ciphertext
from vault.client import Client, RecordRef
from vault.client.writing import INLINE_CIPHERTEXT_MAX
from vault.errors import (
    AccessDenied,
    KeyServiceError,
    KeyServiceRequestError,
    NotFound,
    RecordUnavailable,
    UploadError,
)
from vault.format import DEFAULT_CHUNK_SIZE, IntegrityError

MARKER = b"CAREVAULT-MARKER-7f3a"


def _plaintext(size: int) -> bytes:
    body = os.urandom(size)
    return MARKER + body[len(MARKER) :] if size >= len(MARKER) else body


def _put(client: Client, child: str, data: bytes, category: str = "photo") -> RecordRef:
    return client.put(child_ids=[child], category=category, stream=io.BytesIO(data))


def _release_changed(change: Callable[[dict[str, object]], None]) -> httpx.MockTransport:
    """The real key service, with each result of a key release changed by ``change``."""

    def answer(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = forward(request)
        if request.url.path != "/v1/keys/release":
            return response
        body = json.loads(response.content)
        for result in body["results"]:
            change(result)
        return httpx.Response(response.status_code, json=body)

    return relay(answer)


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
        "Offboarded",
        "Proposal",
        "ReceivedItem",
        "RecordInfo",
        "RecordRef",
        "Share",
        "ShareDownload",
        "ShareItem",
        "ShareProgress",
        "load_identity",
        "read_info",
        "save_identity",
    ]
    for name in sdk.__all__:
        assert getattr(sdk, name).__module__.startswith("vault.client.")


def test_enrol_and_whoami(office: Office, client: Client) -> None:
    me = client.whoami()
    assert me.device_id == client.identity.device_id
    assert me.principal_id == client.identity.principal_id
    assert (me.kind, me.roles) == ("staff", ("educator",))
    assert client.identity.audience == office.service.env["CAREVAULT_AUDIENCE"]


def test_bad_enrolment_code_is_refused(office: Office) -> None:
    with pytest.raises(KeyServiceRequestError, match="enrolment code is not valid") as caught:
        Client.enrol(office.base_url, "not-a-code", "laptop")
    assert caught.value.status == 400


@pytest.mark.parametrize("size", [0, 1, 5000, DEFAULT_CHUNK_SIZE, 2 * DEFAULT_CHUNK_SIZE + 17])
def test_put_get_round_trip(
    office: Office, client: Client, child: str, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "note.txt"
    data = _plaintext(size)
    source.write_bytes(data)
    ref, stored = office.stored(
        lambda: client.put(child_ids=[child], category="observation", path=source)
    )
    assert ref.version == 1
    ciphertext = stored.read_bytes()
    if size >= len(MARKER):
        assert MARKER not in ciphertext
    assert b"note.txt" not in ciphertext
    out = tmp_path / "out.txt"
    assert client.get(ref.record_id, dst=out) == out
    assert out.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()].count("out.txt") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_multipart_upload_streams_parts(office_in_parts: Office, tmp_path: Path) -> None:
    puts: list[str] = []

    def count(request: httpx.Request) -> None:
        if request.method == "PUT":
            puts.append(str(request.url))

    client = office_in_parts.enrol(blob_client=httpx.Client(event_hooks={"request": [count]}))
    child = office_in_parts.child_of(client)
    data = _plaintext(12 * 1024 * 1024 + 3)
    source = tmp_path / "photo.ppm"
    source.write_bytes(data)
    ref = client.put(
        child_ids=[child], category="photo", path=source, content_type="image/x-portable-pixmap"
    )
    assert len(puts) == 3
    out = tmp_path / "copy.ppm"
    client.get(ref.record_id, dst=out)
    assert out.read_bytes() == data
    client.close()


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
    assert info.created_by == client.identity.principal_id
    assert info.created_at.tzinfo is not None


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


def test_getting_the_latest_version_is_one_signed_request(
    client: Client, child: str, tmp_path: Path
) -> None:
    ref = client.put(child_ids=[child], category="incident", stream=io.BytesIO(b"v1"))
    client.amend(ref.record_id, stream=io.BytesIO(b"version two"))
    signed: list[str] = []

    def count(request: httpx.Request, forward: Forward) -> httpx.Response:
        if "signature" in request.headers:
            signed.append(f"{request.method} {request.url.path}")
        return forward(request)

    counted = Client(client.identity, transport=relay(count))
    counted.get(ref.record_id, dst=tmp_path / "latest")
    assert (tmp_path / "latest").read_bytes() == b"version two"
    assert signed == ["POST /v1/keys/release"]


def test_range_reads_only_needed_chunks(client: Client, child: str) -> None:
    data = _plaintext(3 * DEFAULT_CHUNK_SIZE + 100)
    ref = _put(client, child, data)
    requested: list[str] = []

    def spy(request: httpx.Request) -> None:
        if request.method == "GET":
            requested.append(request.headers.get("Range", "whole"))

    client._blobs = httpx.Client(event_hooks={"request": [spy]})
    start = DEFAULT_CHUNK_SIZE - 10
    assert client.get_range(ref.record_id, start=start, length=30) == data[start : start + 30]
    assert "whole" not in requested
    assert len(requested) == 2, "the header, then the two chunks the range touches in one read"
    end = len(data) - 5
    assert client.get_range(ref.record_id, start=end, length=5) == data[end:]


def _flip(path: Path, offset: int) -> None:
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))


def test_altered_blob_fails_and_leaves_nothing(
    office: Office, client: Client, child: str, tmp_path: Path
) -> None:
    ref, stored = office.stored(lambda: _put(client, child, _plaintext(2 * DEFAULT_CHUNK_SIZE + 1)))
    _flip(stored, -100)
    out = tmp_path / "photo.bin"
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=out)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_download_and_is_replaced_by_a_good_one(
    office: Office, client: Client, child: str, tmp_path: Path
) -> None:
    data = _plaintext(DEFAULT_CHUNK_SIZE + 7)
    ref, stored = office.stored(lambda: _put(client, child, data))
    out = tmp_path / "photo.bin"
    out.write_bytes(b"the file that was here before")
    good = stored.read_bytes()
    stored.write_bytes(good[:-1] + bytes([good[-1] ^ 0x01]))
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=out)
    assert out.read_bytes() == b"the file that was here before"
    assert list(tmp_path.iterdir()) == [out]
    stored.write_bytes(good)
    assert client.get(ref.record_id, dst=out) == out
    assert out.read_bytes() == data
    assert list(tmp_path.iterdir()) == [out]


def test_truncated_blob_fails(office: Office, client: Client, child: str, tmp_path: Path) -> None:
    ref, stored = office.stored(lambda: _put(client, child, b"x" * 10_000))
    stored.write_bytes(stored.read_bytes()[:-1])
    with pytest.raises(IntegrityError):
        client.get(ref.record_id, dst=tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("new_size", [5000, 9000], ids=["same_size", "other_size"])
def test_blob_replaced_after_commit_fails_and_leaves_nothing(
    office: Office, client: Client, child: str, tmp_path: Path, new_size: int
) -> None:
    ref, stored = office.stored(lambda: _put(client, child, b"a" * 5000, "observation"))
    original = stored.read_bytes()
    substitute = substitute_ciphertext(client, ref.record_id, b"b" * new_size)
    assert substitute != original
    stored.write_bytes(substitute)
    with pytest.raises(IntegrityError) as caught:
        client.get(ref.record_id, dst=tmp_path / "note.txt")
    assert str(caught.value) == "record failed integrity check"
    assert caught.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delta", [-1, 1], ids=["released_smaller", "released_larger"])
def test_size_other_than_committed_fails_and_leaves_nothing(
    client: Client, child: str, tmp_path: Path, delta: int
) -> None:
    ref = _put(client, child, b"x" * 70_000)

    def resize(result: dict[str, object]) -> None:
        size = result["ciphertext_size"]
        assert isinstance(size, int)
        result["ciphertext_size"] = size + delta

    misled = Client(client.identity, transport=_release_changed(resize))
    with pytest.raises(IntegrityError):
        misled.get(ref.record_id, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == []


def test_digest_other_than_committed_fails_and_leaves_nothing(
    client: Client, child: str, tmp_path: Path
) -> None:
    ref = _put(client, child, b"x" * 70_000)
    zeros = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
    misled = Client(
        client.identity,
        transport=_release_changed(lambda result: result.update(ciphertext_digest=zeros)),
    )
    with pytest.raises(IntegrityError):
        misled.get(ref.record_id, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change",
    [
        {"ciphertext_digest": None},
        {"ciphertext_digest_alg": None},
        {"ciphertext_size": None},
        {"ciphertext_digest": "AAAA"},
        {"ciphertext_digest": "not base64 at all!"},
        {"ciphertext_digest_alg": "md5"},
        {"ciphertext_size": "70100"},
        {"ciphertext_size": 0},
    ],
    ids=[
        "no_digest",
        "no_algorithm",
        "no_size",
        "short_digest",
        "not_base64",
        "unknown_algorithm",
        "size_as_text",
        "size_zero",
    ],
)
def test_release_without_committed_digest_is_a_key_service_error(
    client: Client, child: str, tmp_path: Path, change: dict[str, object]
) -> None:
    ref = _put(client, child, b"x" * 70_000)

    def alter(result: dict[str, object]) -> None:
        for field, value in change.items():
            if value is None:
                result.pop(field, None)
            else:
                result[field] = value

    unchecked = Client(client.identity, transport=_release_changed(alter))
    with pytest.raises(KeyServiceError, match="ciphertext"):
        unchecked.get(ref.record_id, version=1, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == []


def test_release_answer_for_another_request_does_not_open(
    client: Client, child: str, tmp_path: Path
) -> None:
    """A release sealed under one request's nonce must not open as the answer to another."""
    ref = _put(client, child, b"hi", "observation")
    replayed: list[httpx.Response] = []

    def replay(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.url.path != "/v1/keys/release":
            return forward(request)
        if not replayed:
            replayed.append(forward(request))
        first = replayed[0]
        return httpx.Response(first.status_code, headers=first.headers, content=first.content)

    other = Client(client.identity, transport=relay(replay))
    other.get(ref.record_id, version=1, dst=tmp_path / "first")
    with pytest.raises(vault.errors.SealError):
        other.get(ref.record_id, version=1, dst=tmp_path / "second")
    assert not (tmp_path / "second").exists()


def test_other_principal_is_refused(
    office: Office, client: Client, child: str, tmp_path: Path
) -> None:
    ref = _put(client, child, b"hi", "observation")
    stranger = office.enrol()
    with pytest.raises(RecordUnavailable):
        stranger.get(ref.record_id, version=1, dst=tmp_path / "x")
    assert stranger.records(child) == []
    assert list(tmp_path.iterdir()) == []
    stranger.close()


def test_deleted_record_is_unavailable(office: Office, tmp_path: Path) -> None:
    manager = office.enrol(roles=("manager",))
    child = office.child_of(manager, role="manager")
    ref = _put(manager, child, b"hi", "observation")
    manager.delete(ref.record_id)
    with pytest.raises(RecordUnavailable):
        manager.get(ref.record_id, version=1, dst=tmp_path / "x")
    with pytest.raises(NotFound):
        manager.history(ref.record_id)
    manager.close()


def test_failed_upload_is_not_committed(client: Client, child: str) -> None:
    client._blobs = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(503)))
    # Over the inline limit, so that it is uploaded to storage (decision 0030).
    size = INLINE_CIPHERTEXT_MAX + 1
    with pytest.raises(UploadError):
        client.put(child_ids=[child], category="observation", stream=io.BytesIO(b"x" * size))
    assert client.records(child) == []


def test_problem_details_become_errors(client: Client) -> None:
    with pytest.raises(AccessDenied, match="this needs the admin role") as caught:
        client.create_principal(kind="staff", display_name="Eve")
    assert caught.value.status == 403
    assert caught.value.problem["detail"] == "this needs the admin role"


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
