"""Small records carried inline, as ciphertext, through the key service (decision 0030): a
commit may carry a single-upload version's ciphertext itself (up to
``INLINE_CIPHERTEXT_MAX``), which the service hashes and stores, and a release may answer a
small granted version's ciphertext with its key. Every check of the two-step path holds: the
policy decides, a denial carries nothing and looks like a missing record, the digest is the
service's own of what it received, and an oversized inline body is a 413 naming the limit.

Runs on both flavours (local store, and moto S3).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from keyservice.catalog.uploads import INLINE_CIPHERTEXT_MAX
from tests.keyservice.helpers import (
    Device,
    Room,
    admin_enrols,
    b64,
    commit,
    ok,
    pending_version,
    unb64,
)
from tests.servers import KeyService
from vault.format import digest_of

pytestmark = pytest.mark.integration

CIPHERTEXT = b"opaque small ciphertext " * 400


def _claim(ciphertext: bytes, *, inline: bytes | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "ciphertext_size": len(ciphertext),
        "ciphertext_digest_alg": "blake3",
        "ciphertext_digest": b64(digest_of("blake3", ciphertext).value),
        "encrypted_metadata": b64(b"sealed metadata stand-in"),
        "ciphertext": b64(ciphertext if inline is None else inline),
        **fields,
    }


def _release(device: Device, items: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    with device.client() as http:
        response = http.post(
            "/v1/keys/release",
            json={
                "items": [{"record_id": r, "version": v} for r, v in items],
                "include_urls": True,
                "include_ciphertext": True,
            },
        )
    body = ok(response)
    return {(r["record_id"], r["version"]): r for r in body["results"]}


def _granted(device: Device, created: dict[str, Any]) -> dict[str, Any] | None:
    result = _release(device, [(created["record_id"], 1)])[(created["record_id"], 1)]
    return result if result["status"] == "granted" else None


def _stored(device: Device, created: dict[str, Any], *, ciphertext: bytes) -> dict[str, Any]:
    response = commit(device, created, _claim(ciphertext))
    assert response.status_code == 204, response.text
    return created


def test_an_inline_commit_stores_what_it_carried_and_a_release_answers_it(room: Room) -> None:
    created = pending_version(
        room.educator, child_ids=[room.child], ciphertext_size=len(CIPHERTEXT)
    )
    _stored(room.educator, created, ciphertext=CIPHERTEXT)
    granted = _granted(room.educator, created)
    assert granted is not None
    assert unb64(granted["ciphertext"]) == CIPHERTEXT
    assert granted["ciphertext_digest"] == b64(digest_of("blake3", CIPHERTEXT).value)
    # Stored in the blob store like any other version: the download URL serves the same bytes.
    assert httpx.get(granted["download_url"], timeout=30.0).content == CIPHERTEXT


def test_an_inline_commit_whose_digest_differs_is_refused_and_nothing_is_visible(
    room: Room,
) -> None:
    created = pending_version(
        room.educator, child_ids=[room.child], ciphertext_size=len(CIPHERTEXT)
    )
    tampered = CIPHERTEXT[:-1] + b"!"
    response = commit(room.educator, created, _claim(CIPHERTEXT, inline=tampered))
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert _granted(room.educator, created) is None


def test_an_inline_commit_of_another_size_than_claimed_is_refused(room: Room) -> None:
    created = pending_version(
        room.educator, child_ids=[room.child], ciphertext_size=len(CIPHERTEXT)
    )
    shorter = CIPHERTEXT[:-1]
    response = commit(
        room.educator,
        created,
        _claim(
            CIPHERTEXT, inline=shorter, ciphertext_digest=b64(digest_of("blake3", shorter).value)
        ),
    )
    assert response.status_code == 409, response.text
    assert _granted(room.educator, created) is None


def test_an_inline_body_over_the_limit_is_413_naming_it(room: Room) -> None:
    big = bytes(INLINE_CIPHERTEXT_MAX + 1)
    created = pending_version(room.educator, child_ids=[room.child], ciphertext_size=len(big))
    response = commit(room.educator, created, _claim(big))
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert str(INLINE_CIPHERTEXT_MAX) in response.json()["detail"]
    assert _granted(room.educator, created) is None


def test_an_inline_body_at_the_limit_is_stored_even_with_base64_padding(room: Room) -> None:
    exact = bytes(INLINE_CIPHERTEXT_MAX)
    created = pending_version(room.educator, child_ids=[room.child], ciphertext_size=len(exact))
    padded = base64.urlsafe_b64encode(exact).decode("ascii")
    assert padded.endswith("=")
    response = commit(room.educator, created, {**_claim(exact), "ciphertext": padded})
    assert response.status_code == 204, response.text
    granted = _granted(room.educator, created)
    assert granted is not None
    assert unb64(granted["ciphertext"]) == exact


def test_an_inline_commit_by_another_is_the_same_404_and_stores_nothing(room: Room) -> None:
    created = pending_version(
        room.educator, child_ids=[room.child], ciphertext_size=len(CIPHERTEXT)
    )
    response = commit(room.dsl, created, _claim(CIPHERTEXT))
    assert response.status_code == 404, response.text
    missing = dict(created, record_id="0" * 32)
    assert (
        commit(room.dsl, missing, _claim(CIPHERTEXT)).json()["detail"]
        == (response.json()["detail"])
    )
    # Still pending: its author commits it with the two-step path's guarantees.
    assert _granted(room.educator, created) is None
    _stored(room.educator, created, ciphertext=CIPHERTEXT)
    assert _granted(room.educator, created) is not None


def test_a_denied_release_carries_no_ciphertext_and_looks_like_a_missing_record(
    service: KeyService, admin: Device, room: Room
) -> None:
    created = pending_version(
        room.educator, child_ids=[room.child], ciphertext_size=len(CIPHERTEXT)
    )
    _stored(room.educator, created, ciphertext=CIPHERTEXT)
    # Staff with no assignment to the child: the policy denies.
    stranger = admin_enrols(service, admin, kind="staff", roles=["educator"])
    results = _release(stranger, [(created["record_id"], 1), ("0" * 32, 1)])
    denied, missing = results[(created["record_id"], 1)], results[("0" * 32, 1)]
    assert denied.keys() == missing.keys() == {"record_id", "version", "status", "code"}
    assert (denied["status"], denied["code"]) == (missing["status"], missing["code"])
