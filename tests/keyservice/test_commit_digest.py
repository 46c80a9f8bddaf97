"""What identifies a ciphertext (docs/FORMAT.md, "Ciphertext digest"; decision 0022): a
commit names the digest and its algorithm, the key service checks the stored object against
exactly that and records the algorithm with the version, and a release hands both out.

Runs on both flavours (local store, and moto S3): with no MD5s named, every commit here is
checked by the digest of the stored bytes, read back on S3.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.keyservice.helpers import (
    Device,
    assigned_staff,
    b64,
    commit,
    pending_version,
    release,
    upload_whole,
)
from tests.servers import KeyService
from vault.format import digest_of

pytestmark = pytest.mark.integration

CIPHERTEXT = b"opaque ciphertext, identified by its digest" * 50


@pytest.fixture
def educator(service: KeyService, admin: Device) -> tuple[Device, str]:
    return assigned_staff(service, admin)


def _uploaded(device: Device, child: str) -> dict[str, Any]:
    created = pending_version(device, child_ids=[child], ciphertext_size=len(CIPHERTEXT))
    upload_whole(created, CIPHERTEXT)
    return created


def _claim(**digest: Any) -> dict[str, Any]:
    return {
        "ciphertext_size": len(CIPHERTEXT),
        "encrypted_metadata": b64(b"sealed metadata stand-in"),
        **digest,
    }


def _granted(device: Device, created: dict[str, Any]) -> dict[str, Any] | None:
    _, results = release(device, [(created["record_id"], 1)], include_urls=True)
    result = results[(created["record_id"], 1)]
    return result if result["status"] == "granted" else None


BLAKE3 = b64(digest_of("blake3", CIPHERTEXT).value)
SHA256 = b64(hashlib.sha256(CIPHERTEXT).digest())


def test_a_blake3_commit_is_released_with_its_algorithm_and_digest(
    educator: tuple[Device, str],
) -> None:
    device, child = educator
    created = _uploaded(device, child)
    response = commit(
        device, created, _claim(ciphertext_digest_alg="blake3", ciphertext_digest=BLAKE3)
    )
    assert response.status_code == 204, response.text
    granted = _granted(device, created)
    assert granted is not None
    assert (granted["ciphertext_digest_alg"], granted["ciphertext_digest"]) == ("blake3", BLAKE3)
    assert "ciphertext_sha256" not in granted
    assert httpx.get(granted["download_url"], timeout=30.0).content == CIPHERTEXT


def test_a_wrong_blake3_digest_is_refused_and_nothing_is_visible(
    educator: tuple[Device, str],
) -> None:
    device, child = educator
    created = _uploaded(device, child)
    wrong = b64(digest_of("blake3", CIPHERTEXT[:-1] + b"!").value)
    response = commit(
        device, created, _claim(ciphertext_digest_alg="blake3", ciphertext_digest=wrong)
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert _granted(device, created) is None


@pytest.mark.parametrize(
    ("alg", "value"),
    [("sha256", BLAKE3), ("blake3", SHA256)],
    ids=["blake3_named_sha256", "sha256_named_blake3"],
)
def test_a_digest_named_under_another_algorithm_is_refused(
    educator: tuple[Device, str], alg: str, value: str
) -> None:
    # The right bytes' digest, but under the other algorithm's name: the service checks the
    # stored object in the algorithm named, so the claim does not match and nothing commits.
    device, child = educator
    created = _uploaded(device, child)
    response = commit(device, created, _claim(ciphertext_digest_alg=alg, ciphertext_digest=value))
    assert response.status_code == 409, response.text
    assert _granted(device, created) is None


@pytest.mark.parametrize(
    "digest",
    [
        {"ciphertext_digest_alg": "md5", "ciphertext_digest": BLAKE3},
        {"ciphertext_digest_alg": "BLAKE3", "ciphertext_digest": BLAKE3},
        {"ciphertext_digest_alg": "blake3"},
        {"ciphertext_digest": BLAKE3},
        {"ciphertext_digest_alg": "blake3", "ciphertext_digest": b64(bytes(31))},
        {
            "ciphertext_digest_alg": "sha256",
            "ciphertext_digest": SHA256,
            "ciphertext_sha256": SHA256,
        },
        {},
    ],
    ids=["unknown", "wrong_case", "no_value", "no_algorithm", "short", "both_forms", "none"],
)
def test_a_malformed_digest_claim_is_refused(
    educator: tuple[Device, str], digest: dict[str, Any]
) -> None:
    device, child = educator
    created = _uploaded(device, child)
    response = commit(device, created, _claim(**digest))
    assert response.status_code == 422, response.text
    assert _granted(device, created) is None
    # Nothing was spent: the right claim still commits the version.
    right = _claim(ciphertext_digest_alg="blake3", ciphertext_digest=BLAKE3)
    assert commit(device, created, right).status_code == 204


def test_a_commit_from_a_client_older_than_blake3_is_a_sha256_version(
    educator: tuple[Device, str],
) -> None:
    device, child = educator
    created = _uploaded(device, child)
    assert commit(device, created, _claim(ciphertext_sha256=SHA256)).status_code == 204
    granted = _granted(device, created)
    assert granted is not None
    assert (granted["ciphertext_digest_alg"], granted["ciphertext_digest"]) == ("sha256", SHA256)
