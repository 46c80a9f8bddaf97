"""Upload URLs are bound to the size the version was created with, and a local upload URL
dies with its version (security review, finding 6). A presigned S3 URL cannot be revoked; it
signs its Content-Length, and what bounds its use after the version is gone is
tests/keyservice/test_sweep.py's."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, select

from keyservice.db.tables import record_versions
from tests.keyservice.helpers import (
    Device,
    assigned_staff,
    commit,
    commit_claim,
    ok,
    pending_version,
)
from tests.servers import S3_SECRET_KEY, KeyService, run_keyservice_command
from tests.storage.sigv4 import signature_holds, signed_headers

pytestmark = pytest.mark.integration

DECLARED = b"12345"
LARGE = 8 * 1024 * 1024


def _create(device: Device, child: str, size: int = len(DECLARED)) -> dict[str, Any]:
    created = pending_version(device, child_ids=[child], ciphertext_size=size)
    assert created["upload"]["method"] == "single"
    return created


def _object_path(service: KeyService, service_db: Engine, created: dict[str, Any]) -> Path:
    with service_db.connect() as connection:
        name = connection.execute(
            select(record_versions.c.object_name).where(
                record_versions.c.record_id == created["record_id"]
            )
        ).scalar_one()
    root = Path(service.env["CAREVAULT_BLOB_STORE"].removeprefix("local:"))
    return root / name[:2] / name


def _pending_on_disk(
    service: KeyService, service_db: Engine, staff: tuple[Device, str]
) -> tuple[Device, dict[str, Any], Path]:
    """A pending version the staff member created on the local store, and the path its
    object will have there."""
    device, child = staff
    created = _create(device, child)
    return device, created, _object_path(service, service_db, created)


def _raw_put(url: str, declared: int) -> int:
    """The status of a PUT that declares ``declared`` bytes and sends none of them."""
    parsed = urlsplit(url)
    head = (
        f"PUT {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nContent-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10.0) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def staff(service: KeyService, admin: Device) -> tuple[Device, str]:
    return assigned_staff(service, admin, role="dsl")


@pytest.mark.parametrize("service", ["embedded"], indirect=True)
def test_a_local_upload_url_takes_only_the_declared_size(
    service: KeyService, staff: tuple[Device, str], service_db: Engine
) -> None:
    device, created, stored = _pending_on_disk(service, service_db, staff)
    url = created["upload"]["url"]

    larger = httpx.put(url, content=b"x" * LARGE, timeout=60.0)
    assert larger.status_code == 413, larger.text
    assert larger.headers["content-type"].startswith("application/problem+json")
    assert _raw_put(url, len(DECLARED) + 1) == 413
    smaller = httpx.put(url, content=DECLARED[:-1], timeout=30.0)
    assert smaller.status_code == 400, smaller.text
    assert not stored.exists()

    assert httpx.put(url, content=DECLARED, timeout=30.0).status_code == 200
    ok(commit(device, created, commit_claim(DECLARED)))
    assert stored.read_bytes() == DECLARED


@pytest.mark.parametrize("service", ["embedded"], indirect=True)
def test_a_local_upload_url_dies_when_its_record_is_shredded(
    service: KeyService, staff: tuple[Device, str], service_db: Engine
) -> None:
    device, created, stored = _pending_on_disk(service, service_db, staff)
    with device.client() as http:
        ok(http.delete(f"/v1/records/{created['record_id']}"))

    late = httpx.put(created["upload"]["url"], content=DECLARED, timeout=30.0)
    assert late.status_code == 404, late.text
    assert _raw_put(created["upload"]["url"], len(DECLARED)) == 404
    assert not stored.exists()
    assert not stored.parent.exists() or list(stored.parent.glob(f"{stored.name}*")) == []


@pytest.mark.parametrize("service", ["embedded"], indirect=True)
def test_a_local_upload_url_dies_when_its_version_is_swept(
    service: KeyService, staff: tuple[Device, str], service_db: Engine
) -> None:
    _, created, stored = _pending_on_disk(service, service_db, staff)
    swept = run_keyservice_command(service.env, "sweep", "--older-than-hours", "0")
    assert "could not" not in swept.stderr, swept.stderr

    late = httpx.put(created["upload"]["url"], content=DECLARED, timeout=30.0)
    assert late.status_code == 404, late.text
    assert not stored.exists()


@pytest.mark.parametrize("service", ["production"], indirect=True)
def test_an_s3_upload_url_signs_the_declared_size(staff: tuple[Device, str]) -> None:
    """S3 refuses a PUT whose Content-Length differs from the one its URL signs; moto does
    not check signatures, so the signature is checked here as S3 checks it."""
    device, child = staff
    url = _create(device, child)["upload"]["url"]
    assert "content-length" in signed_headers(url)

    def holds(length: int) -> bool:
        headers = {"Content-Length": str(length)}
        return signature_holds(url, method="PUT", headers=headers, secret_key=S3_SECRET_KEY)

    assert holds(len(DECLARED))
    assert not holds(LARGE)
    assert not holds(len(DECLARED) - 1)
