"""A commit's check against the stored object when the client also names its pieces' MD5s
(decision 0008): S3 compares them with its ETag in one HEAD; anything that does not match is
read back and compared by SHA-256.

Runs on both flavours: the embedded one (local store, which keeps no MD5s) always checks the
SHA-256 it recorded, the production one (moto S3) takes the ETag path when the MD5s match —
and then stores the SHA-256 the client claims for those bytes, which readers check.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from keyservice.db.tables import record_versions
from tests.keyservice.helpers import (
    Device,
    assigned_staff,
    b64,
    bootstrap_admin,
    commit,
    commit_claim,
    ok,
    pending_version,
    release,
    upload_whole,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration

CIPHERTEXT = b"opaque ciphertext, checked at commit" * 100


def _md5(data: bytes) -> str:
    return b64(hashlib.md5(data, usedforsecurity=False).digest())


@pytest.fixture
def educator(service: KeyService, admin: Device) -> tuple[Device, str]:
    return assigned_staff(service, admin)


@pytest.fixture
def educator_on_production(keyservice_production: KeyService) -> tuple[Device, str]:
    return assigned_staff(keyservice_production, bootstrap_admin(keyservice_production))


def _created(device: Device, child: str) -> dict[str, Any]:
    """A pending version of ``CIPHERTEXT``'s size, nothing uploaded yet."""
    created = pending_version(device, child_ids=[child], ciphertext_size=len(CIPHERTEXT))
    assert created["upload"]["method"] == "single"
    return created


def _uploaded(device: Device, child: str, stored: bytes) -> dict[str, Any]:
    """A pending version whose object holds ``stored``."""
    created = _created(device, child)
    upload_whole(created, stored)
    return created


def _commit(device: Device, created: dict[str, Any], **claim: Any) -> httpx.Response:
    """Commit ``created`` claiming ``CIPHERTEXT``, with ``claim``'s fields added or replaced."""
    return commit(device, created, commit_claim(CIPHERTEXT, **claim))


def _assert_refused(
    device: Device, created: dict[str, Any], response: httpx.Response, status: int
) -> None:
    """The commit was refused with ``status``, and the version stays invisible."""
    assert response.status_code == status, response.text
    assert not _visible(device, created)


def _visible(device: Device, created: dict[str, Any]) -> bool:
    _, results = release(device, [(created["record_id"], 1)])
    return bool(results[(created["record_id"], 1)]["status"] == "granted")


def test_a_commit_with_the_right_md5_is_accepted(educator: tuple[Device, str]) -> None:
    device, child = educator
    created = _uploaded(device, child, CIPHERTEXT)
    assert _commit(device, created, part_md5s=[_md5(CIPHERTEXT)]).status_code == 204
    assert _visible(device, created)


def test_a_wrong_md5_falls_back_to_the_digest_and_the_right_one_is_accepted(
    educator: tuple[Device, str],
) -> None:
    device, child = educator
    created = _uploaded(device, child, CIPHERTEXT)
    response = _commit(device, created, part_md5s=[_md5(b"other bytes")])
    assert response.status_code == 204
    assert _visible(device, created)


def test_an_object_other_than_the_claim_is_refused_whatever_md5_is_named(
    educator: tuple[Device, str],
) -> None:
    device, child = educator
    # Same size, one byte different: neither the MD5 nor the SHA-256 of the claim matches
    # what is stored, so the ETag check fails, the read-back fails, and the commit is refused.
    altered = CIPHERTEXT[:-1] + b"!"
    created = _uploaded(device, child, altered)
    refused = _commit(device, created, part_md5s=[_md5(CIPHERTEXT)])
    _assert_refused(device, created, refused, 409)


def test_a_truncated_object_is_refused_with_its_own_md5(
    service: KeyService, educator: tuple[Device, str]
) -> None:
    device, child = educator
    if service.env["CAREVAULT_BLOB_STORE"].startswith("local:"):
        # The local store refuses a body shorter than its URL's size (decision 0010), so no
        # truncated object is stored; S3 would too, from the signed Content-Length, but moto
        # does not check signatures, and there the commit meets the truncated object.
        created = _created(device, child)
        truncated = httpx.put(created["upload"]["url"], content=CIPHERTEXT[:-10], timeout=30.0)
        assert truncated.status_code == 400
    else:
        created = _uploaded(device, child, CIPHERTEXT[:-10])
    refused = _commit(device, created, part_md5s=[_md5(CIPHERTEXT[:-10])])
    _assert_refused(device, created, refused, 409)


@pytest.mark.parametrize(
    "part_md5s",
    [["AAAA"], ["not base64 !"], [b64(bytes(17))], "one string"],
    ids=["short", "not-base64", "17-bytes", "not-a-list"],
)
def test_malformed_md5s_are_refused_and_change_nothing(
    educator: tuple[Device, str], part_md5s: Any
) -> None:
    device, child = educator
    created = _uploaded(device, child, CIPHERTEXT)
    _assert_refused(device, created, _commit(device, created, part_md5s=part_md5s), 422)
    assert _commit(device, created, part_md5s=[_md5(CIPHERTEXT)]).status_code == 204


def test_with_the_right_md5_the_sha256_is_the_clients_word_and_readers_check_it(
    service: KeyService, educator: tuple[Device, str]
) -> None:
    # The documented trade-off of the ETag path: a client that names the stored bytes' MD5 but
    # another SHA-256 gets its version committed on S3, and every reader then refuses the
    # bytes, because the digest a release hands out is the claim. The local store refuses it.
    device, child = educator
    created = _uploaded(device, child, CIPHERTEXT)
    claim = hashlib.sha256(b"not what was uploaded").digest()
    response = _commit(device, created, ciphertext_sha256=b64(claim), part_md5s=[_md5(CIPHERTEXT)])
    if not service.env.get("CAREVAULT_BLOB_STORE", "").startswith("s3://"):
        _assert_refused(device, created, response, 409)
        return
    assert response.status_code == 204
    _, results = release(device, [(created["record_id"], 1)], include_urls=True)
    granted = results[(created["record_id"], 1)]
    assert (granted["ciphertext_digest_alg"], granted["ciphertext_digest"]) == (
        "sha256",
        b64(claim),
    )
    stored = httpx.get(granted["download_url"], timeout=30.0).content
    assert stored == CIPHERTEXT
    assert b64(hashlib.sha256(stored).digest()) != granted["ciphertext_digest"]


@pytest.mark.parametrize("size", [0, 31, 33, 40_000])
def test_a_digest_that_is_not_32_bytes_is_refused(educator: tuple[Device, str], size: int) -> None:
    device, child = educator
    created = _uploaded(device, child, CIPHERTEXT)
    response = _commit(
        device, created, ciphertext_sha256=b64(bytes(size)), part_md5s=[_md5(CIPHERTEXT)]
    )
    _assert_refused(device, created, response, 422)


def test_two_commits_of_one_version_racing_make_it_visible_once(
    keyservice_production: KeyService, educator_on_production: tuple[Device, str]
) -> None:
    # Both commits read the version as pending and check the object while the test holds
    # the version's row; released together, only the first may commit it (PostgreSQL does
    # not lock the row on the read, so the second needs the update's own pending check).
    device, child = educator_on_production
    created = _uploaded(device, child, CIPHERTEXT)
    engine = create_engine(keyservice_production.env["CAREVAULT_DATABASE_URL"])
    try:
        with engine.connect() as holder:
            holder.execute(
                select(record_versions.c.state)
                .where(record_versions.c.record_id == created["record_id"])
                .with_for_update()
            )
            with ThreadPoolExecutor(max_workers=2) as pool:
                racing = [
                    pool.submit(_commit, device, created, part_md5s=[_md5(CIPHERTEXT)])
                    for _ in range(2)
                ]
                time.sleep(1.0)  # both are now waiting on the row (or have not read it yet)
                holder.rollback()
                statuses = sorted(future.result().status_code for future in racing)
    finally:
        engine.dispose()
    assert statuses == [204, 404]
    assert _visible(device, created)
    with device.client() as http:
        history = ok(http.get(f"/v1/records/{created['record_id']}/versions"))
    assert [v["version"] for v in history] == [1]
