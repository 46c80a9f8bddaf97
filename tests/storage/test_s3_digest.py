"""S3's stat reports no digest, even for an object stored with the uploader's checksum."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.servers import S3Server
from vault.storage import new_object_name

pytestmark = pytest.mark.integration


def test_an_uploaders_checksum_is_not_taken_for_the_stored_digest(s3_server: S3Server) -> None:
    """moto keeps an x-amz-checksum-sha256 without checking it against the body, as some
    S3-compatible stores may; a commit that trusted it would accept a digest of other bytes."""
    server = s3_server.with_new_bucket()
    store = server.store()
    name = new_object_name()
    claimed = hashlib.sha256(b"the bytes the commit will claim").digest()
    response = httpx.put(
        store.presign_put(name, size=len(b"other bytes"), expires_s=60),
        content=b"other bytes",
        headers={
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": base64.b64encode(claimed).decode(),
        },
    )
    if response.is_success:
        assert store.stat(name).sha256 is None
    # A store that checks the checksum refuses the upload, which is just as good.
    else:
        assert response.status_code == 400
