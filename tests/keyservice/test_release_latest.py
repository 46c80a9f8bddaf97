"""A release item without a version gets the record's latest committed version in the same
round trip: one policy decision, one audit entry, and the result names the version released
(issue 13, part 6). Real servers, real record blobs."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from keyservice.ids import new_id
from tests.keyservice.conftest import database
from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    assign,
    b64,
    create_child,
    ok,
)
from tests.servers import KeyService
from vault.format import (
    Metadata,
    RecordAttributes,
    ciphertext_size,
    decrypt,
    digest_of,
    encrypt,
)

pytestmark = pytest.mark.integration


def _put(
    device: Device,
    child_id: str,
    plaintext: bytes,
    *,
    amend: str | None = None,
    commit: bool = True,
) -> tuple[str, int, bytes]:
    """Create (or amend) a record whose blob is ``plaintext`` encrypted under its key, and
    commit it unless told not to (then the version stays pending). Returns the record id, the
    version and its record key."""
    metadata = Metadata(file_name="note.txt", content_type="text/plain", size=len(plaintext))
    size = ciphertext_size(metadata, child_count=1)
    with device.client() as http:
        created = http.post(
            f"/v1/records/{amend}/versions" if amend else "/v1/records",
            json={"child_ids": [child_id], "category": "observation", "ciphertext_size": size},
        )
        body = ok(created)
        key = device.open_key(created, body)
        if not commit:
            return body["record_id"], body["version"], key
        blob = io.BytesIO()
        written = encrypt(
            record_key=key,
            attributes=RecordAttributes.from_hex(**body["attributes"]),
            metadata=metadata,
            src=io.BytesIO(plaintext),
            dst=blob,
        )
        httpx.put(body["upload"]["url"], content=blob.getvalue(), timeout=30.0).raise_for_status()
        ok(
            http.post(
                f"/v1/records/{body['record_id']}/versions/{body['version']}/commit",
                json={
                    "ciphertext_size": written.ciphertext_size,
                    "ciphertext_digest_alg": written.digest.alg,
                    "ciphertext_digest": b64(written.digest.value),
                    "encrypted_metadata": b64(b"sealed metadata stand-in"),
                },
            )
        )
    return body["record_id"], body["version"], key


def _educator(service: KeyService, admin: Device, child_id: str) -> Device:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=educator.principal_id, child_id=child_id, role="educator")
    return educator


def _release(device: Device, items: list[dict[str, Any]]) -> tuple[httpx.Response, list[Any]]:
    with device.client() as http:
        response = http.post("/v1/keys/release", json={"items": items, "include_urls": True})
    return response, ok(response)["results"]


def _decrypt(device: Device, response: httpx.Response, result: dict[str, Any]) -> bytes:
    """Open the sealed key, download the blob, check it as docs/API.md says, decrypt it."""
    key = device.open_key(response, result)
    blob = httpx.get(result["download_url"], timeout=30.0).content
    assert len(blob) == result["ciphertext_size"]
    assert result["ciphertext_digest_alg"] == "blake3"
    assert b64(digest_of("blake3", blob).value) == result["ciphertext_digest"]
    plaintext = io.BytesIO()
    decrypt(
        record_key=key,
        attributes=RecordAttributes.from_hex(**result["attributes"]),
        src=io.BytesIO(blob),
        dst=plaintext,
    )
    return plaintext.getvalue()


def _release_entries(service: KeyService, device: Device) -> list[tuple[int, dict[str, Any]]]:
    engine = database(service)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT seq, detail FROM audit_entries WHERE action = 'keys.release' "
                "AND actor_device = :device ORDER BY seq"
            ),
            {"device": device.device_id},
        ).all()
    engine.dispose()
    return [(seq, json.loads(detail)) for seq, detail in rows]


def _disclosed(service: KeyService, seq: int) -> list[tuple[str, int]]:
    engine = database(service)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT record_id, version FROM disclosures WHERE audit_seq = :seq"),
            {"seq": seq},
        ).all()
    engine.dispose()
    return [(record_id, version) for record_id, version in rows]


def test_no_version_releases_the_latest_committed_one_like_the_versioned_path(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    educator = _educator(service, admin, child)
    record_id, _, _ = _put(educator, child, b"first observation")
    _, second, second_key = _put(educator, child, b"second observation", amend=record_id)

    response, (latest,) = _release(educator, [{"record_id": record_id}])
    assert response.headers["content-type"] == "application/json"
    assert latest["status"] == "granted"
    assert latest["version"] == second == 2
    assert latest["attributes"]["version"] == 2
    assert educator.open_key(response, latest) == second_key
    assert _decrypt(educator, response, latest) == b"second observation"

    # The same version asked for by number: the same answer but for the sealing.
    by_number, (versioned,) = _release(educator, [{"record_id": record_id, "version": 2}])
    assert educator.open_key(by_number, versioned) == second_key
    assert _decrypt(educator, by_number, versioned) == b"second observation"
    unsealed = {"sealed_key", "download_url"}
    assert {k: v for k, v in latest.items() if k not in unsealed} == {
        k: v for k, v in versioned.items() if k not in unsealed
    }

    # An explicit null asks for the latest too, beside a versioned item of the same record.
    _, results = _release(
        educator,
        [{"record_id": record_id, "version": None}, {"record_id": record_id, "version": 1}],
    )
    assert [(r["status"], r["version"]) for r in results] == [("granted", 2), ("granted", 1)]


def test_a_pending_newer_version_is_not_picked(service: KeyService, admin: Device) -> None:
    child = create_child(admin)
    educator = _educator(service, admin, child)
    record_id, _, first_key = _put(educator, child, b"committed")
    _, pending, _ = _put(educator, child, b"never uploaded", amend=record_id, commit=False)
    assert pending == 2

    response, (latest,) = _release(educator, [{"record_id": record_id}])
    assert (latest["status"], latest["version"]) == ("granted", 1)
    assert educator.open_key(response, latest) == first_key
    assert _decrypt(educator, response, latest) == b"committed"


def test_a_record_the_caller_may_not_read_is_the_uniform_refusal(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    record_id, _, _ = _put(_educator(service, admin, child), child, b"not for everyone")
    other_child = create_child(admin)
    outsider = _educator(service, admin, other_child)
    pending_only, _, _ = _put(outsider, other_child, b"pending", commit=False)
    made_up = new_id()

    _, results = _release(
        outsider,
        [
            {"record_id": record_id},
            {"record_id": made_up},
            {"record_id": pending_only},
            {"record_id": record_id, "version": 1},
        ],
    )
    forbidden, missing, uncommitted, versioned = results
    # The same answer whatever the reason, naming only what was asked.
    for result, asked in ((forbidden, record_id), (missing, made_up), (uncommitted, pending_only)):
        assert result == {
            "record_id": asked,
            "version": None,
            "status": "denied",
            "code": "unavailable",
        }
    assert versioned == {
        "record_id": record_id,
        "version": 1,
        "status": "denied",
        "code": "unavailable",
    }


def test_a_release_of_the_latest_version_is_one_audit_entry(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    educator = _educator(service, admin, child)
    record_id, _, _ = _put(educator, child, b"first")
    _put(educator, child, b"second", amend=record_id)
    made_up = new_id()
    before = _release_entries(service, educator)

    _, results = _release(educator, [{"record_id": record_id}, {"record_id": made_up}])
    assert [r["status"] for r in results] == ["granted", "denied"]

    after = _release_entries(service, educator)
    assert len(after) == len(before) + 1
    seq, detail = after[-1]
    # The version decided is the one released; a made-up id is a count and a digest, with
    # the version it named: none.
    listed = json.dumps([[made_up, None]], separators=(",", ":")).encode("ascii")
    assert detail == {
        "items": [[record_id, 2, "granted", "assignment"]],
        "unknown": {"count": 1, "sha256": hashlib.sha256(listed).hexdigest()},
    }
    assert _disclosed(service, seq) == [(record_id, 2)]
