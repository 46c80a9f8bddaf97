"""Uploads in parts: the service plans them, the client PUTs each part, the commit names the
parts' ETags and the service completes the upload before checking size and digest."""

from __future__ import annotations

import httpx
import pytest

from tests.keyservice.helpers import (
    assigned_staff,
    bootstrap_admin,
    commit,
    commit_claim,
    ok,
    pending_version,
    release,
)
from tests.servers import KeyServiceFactory

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.mark.parametrize("flavour", ["embedded", "production"])
def test_multipart_upload_commit_and_download(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    service = keyservice_factory(
        flavour=flavour,
        extra_env={
            "CAREVAULT_MULTIPART_THRESHOLD_BYTES": str(5 * MIB),
            "CAREVAULT_PART_SIZE_BYTES": str(5 * MIB),
        },
    )
    educator, child = assigned_staff(service, bootstrap_admin(service))
    ciphertext = bytes(range(256)) * (11 * MIB // 256)
    created = pending_version(
        educator, child_ids=[child], category="photo", ciphertext_size=len(ciphertext)
    )
    upload = created["upload"]
    assert upload["method"] == "multipart"
    assert "upload_id" not in upload
    size = upload["part_size"]
    parts = []
    for number, url in enumerate(upload["part_urls"], start=1):
        piece = ciphertext[(number - 1) * size : number * size]
        put = httpx.put(url, content=piece, timeout=60.0)
        assert put.is_success, put.text
        parts.append({"part_number": number, "etag": put.headers["ETag"]})
    assert len(parts) == 3
    ok(commit(educator, created, commit_claim(ciphertext, parts=parts)))
    _, results = release(educator, [(created["record_id"], 1)], include_urls=True)
    url = results[(created["record_id"], 1)]["download_url"]
    assert httpx.get(url, timeout=60.0).content == ciphertext
    service.stop()
