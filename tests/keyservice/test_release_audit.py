"""What a key release costs before its nonce is checked, and what it may put in the audit.

A replayed release is refused before anything about its items is read, unwrapped or sealed
(its nonce is still spent in the audit batch, decision 0007); ids that match no committed
record version are audited as a count and a digest, not one by one, so a caller cannot grow
an entry with ids it made up. Real servers.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
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
    bootstrap_admin,
    create_child,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService, KeyServiceFactory

pytestmark = pytest.mark.integration


def _entries(service: KeyService, device: Device, action: str) -> list[dict[str, Any]]:
    """The ``action`` entries whose actor is ``device``, oldest first."""
    engine = database(service)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT detail FROM audit_entries WHERE action = :action "
                "AND actor_device = :device ORDER BY seq"
            ),
            {"action": action, "device": device.device_id},
        ).scalars()
        details = [json.loads(detail) for detail in rows]
    engine.dispose()
    return details


def _last_rejection(service: KeyService) -> dict[str, Any]:
    engine = database(service)
    with engine.connect() as connection:
        detail = connection.execute(
            text(
                "SELECT detail FROM audit_entries WHERE action = 'auth.reject' "
                "ORDER BY seq DESC LIMIT 1"
            )
        ).scalar_one()
    engine.dispose()
    result: dict[str, Any] = json.loads(detail)
    return result


def _educator_with_record(service: KeyService, admin: Device) -> tuple[Device, str]:
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    return educator, put_record(educator, child_ids=[child]).record_id


def test_a_replayed_release_is_refused_before_its_items_are_read(
    keyservice_factory: KeyServiceFactory,
) -> None:
    """The replay meets a catalog it cannot read (a table renamed under the service): it is
    still the generic 401 of a replay, not the 503 that reading the batch would give."""
    service = keyservice_factory(flavour="embedded")
    educator, record_id = _educator_with_record(service, bootstrap_admin(service))
    with educator.client() as http:
        first = http.post(
            "/v1/keys/release", json={"items": [{"record_id": record_id, "version": 1}]}
        )
    assert ok(first)["results"][0]["status"] == "granted"

    catalog = Path(service.env["CAREVAULT_DATA_DIR"]) / "carevault.db"
    with sqlite3.connect(catalog) as connection:
        connection.execute("ALTER TABLE record_children RENAME TO record_children_hidden")
    try:
        with httpx.Client(timeout=30.0) as plain:
            replay = plain.send(first.request)
    finally:
        with sqlite3.connect(catalog) as connection:
            connection.execute("ALTER TABLE record_children_hidden RENAME TO record_children")

    assert replay.status_code == 401, replay.text
    assert "sealed_key" not in replay.text
    assert len(_entries(service, educator, "keys.release")) == 1
    rejected = _last_rejection(service)
    assert rejected["reason"] == "replayed_nonce"


def _digest(pairs: list[tuple[str, int]]) -> str:
    """docs/AUDIT.md: SHA-256 of the canonical JSON of the sorted [record_id, version] pairs."""
    listed = [[record_id, version] for record_id, version in sorted(pairs)]
    return hashlib.sha256(json.dumps(listed, separators=(",", ":")).encode("ascii")).hexdigest()


def test_unknown_ids_are_audited_as_a_count_and_a_digest(
    service: KeyService, admin: Device
) -> None:
    educator, mine = _educator_with_record(service, admin)
    # A record that exists but is not the educator's: a denial worth naming in the entry.
    _, not_mine = _educator_with_record(service, admin)
    made_up = [(new_id(), 1) for _ in range(997)] + [(mine, 2)]
    items = [(mine, 1), (not_mine, 1), *made_up]

    _, results = release(educator, items)

    assert results[(mine, 1)]["status"] == "granted"
    assert {results[pair]["status"] for pair in items[1:]} == {"denied"}
    (detail,) = _entries(service, educator, "keys.release")[-1:]
    assert detail["items"] == [
        [mine, 1, "granted", "assignment"],
        [not_mine, 1, "denied", "none"],
    ]
    assert detail["unknown"] == {"count": len(made_up), "sha256": _digest(made_up)}
    assert len(json.dumps(detail)) < 600
