"""The local-directory store's blob routes, ``GET/PUT /v1/blobs/{token}`` (embedded only)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from tests.keyservice.helpers import (
    Device,
    assigned_staff,
    commit,
    commit_claim,
    ok,
    pending_version,
    put_record,
    release,
)
from tests.servers import KeyService

# The blob routes exist only with the local-directory store, so only the embedded service runs.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("service", ["embedded"], indirect=True),
]


@pytest.fixture
def educator(service: KeyService, admin: Device) -> tuple[Device, str]:
    assert service.env["CAREVAULT_BLOB_STORE"].startswith("local:")
    return assigned_staff(service, admin)


def _download_url(device: Device, child: str) -> str:
    stored = put_record(device, child_ids=[child], ciphertext=bytes(range(100)))
    _, results = release(device, [(stored.record_id, 1)], include_urls=True)
    return str(results[(stored.record_id, 1)]["download_url"])


@pytest.mark.parametrize(
    "wanted",
    [
        b"bytes=" + b"1" * 5000 + b"-",
        b"bytes=-" + b"9" * 5000,
        b"bytes=0-" + b"9" * 20,
        "bytes=\u0661-\u0662".encode(),  # Arabic-Indic digits
        "bytes=\uff11-\uff12".encode(),  # full-width digits
    ],
    ids=["long_start", "long_suffix", "twenty_digit_end", "arabic_indic", "full_width"],
)
def test_range_with_long_or_non_ascii_numbers_is_refused(
    educator: tuple[Device, str], wanted: bytes
) -> None:
    url = _download_url(*educator)
    answer = httpx.get(url, headers=[(b"Range", wanted)], timeout=30.0)
    assert answer.status_code == 416, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_nineteen_digit_range_end_is_clamped(educator: tuple[Device, str]) -> None:
    url = _download_url(*educator)
    answer = httpx.get(url, headers={"Range": "bytes=90-" + "9" * 19}, timeout=30.0)
    assert (answer.status_code, answer.content) == (206, bytes(range(90, 100)))


def _raw_put(url: str, headers: dict[str, str], body: bytes = b"") -> int:
    """Send a PUT's head (and ``body``) on a raw socket; the status of the answer that comes
    back without the rest of the declared body ever being sent."""
    parsed = urlsplit(url)
    head = f"PUT {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10.0) as sock:
        sock.sendall(head.encode() + body)
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1])


def _upload_url(device: Device, child: str, size: int = 4) -> tuple[str, dict[str, object]]:
    created = pending_version(device, child_ids=[child], ciphertext_size=size)
    return str(created["upload"]["url"]), created


def test_a_bad_upload_token_is_refused_before_the_body_is_read(
    educator: tuple[Device, str],
) -> None:
    url, _ = _upload_url(*educator)
    forged = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
    assert _raw_put(forged, {"Content-Length": str(1 << 30)}) == 403


def test_a_declared_size_over_the_limit_is_refused_before_the_body_is_read(
    educator: tuple[Device, str],
) -> None:
    url, _ = _upload_url(*educator)
    assert _raw_put(url, {"Content-Length": str((1 << 30) + 1)}) == 413


def test_a_committed_object_cannot_be_replaced_through_its_upload_url(
    educator: tuple[Device, str],
) -> None:
    device, child = educator
    url, created = _upload_url(device, child)
    assert httpx.put(url, content=b"abcd", timeout=30.0).status_code == 200
    ok(commit(device, created, commit_claim(b"abcd")))
    again = httpx.put(url, content=b"wxyz", timeout=30.0)
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert _raw_put(url, {"Content-Length": str(1 << 20)}) == 409
    _, results = release(device, [(created["record_id"], 1)], include_urls=True)
    downloaded = httpx.get(results[(created["record_id"], 1)]["download_url"], timeout=30.0)
    assert downloaded.content == b"abcd"
