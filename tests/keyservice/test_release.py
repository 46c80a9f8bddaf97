"""Key release against the real service: the decision table end to end, a court order that
restricts a guardian, one denial shape for whatever is not granted, and release bodies that are
refused. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.keyservice.helpers import (
    Device,
    Room,
    admin_enrols,
    assign,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def _educator_of_both_children(service: KeyService, admin: Device, room: Room) -> Device:
    """An educator assigned to both children, who may create the group record."""
    both = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=both.principal_id, child_id=room.child, role="educator")
    assign(admin, staff_id=both.principal_id, child_id=room.other_child, role="educator")
    return both


def test_decision_table_end_to_end(room: Room, service: KeyService, admin: Device) -> None:
    child = room.child
    observation = put_record(room.educator, child_ids=[child])
    safeguarding = put_record(room.dsl, child_ids=[child], category="safeguarding")
    withheld = put_record(room.dsl, child_ids=[child], withheld_from_guardians=True)
    group = put_record(
        _educator_of_both_children(service, admin, room), child_ids=[child, room.other_child]
    )
    external = admin_enrols(service, admin, kind="external", organisation="Health visiting")
    cases = [
        (room.educator, observation, "granted"),
        (room.educator, safeguarding, "denied"),
        (room.dsl, safeguarding, "granted"),
        (room.guardian, observation, "granted"),
        (room.guardian, safeguarding, "denied"),
        (room.guardian, withheld, "denied"),
        (room.educator, group, "denied"),
        (external, observation, "denied"),
        (admin, observation, "denied"),
    ]
    for device, record, expected in cases:
        _, results = release(device, [(record.record_id, record.version)])
        assert results[(record.record_id, record.version)]["status"] == expected, (
            device.principal_id,
            record.record_id,
            expected,
        )


def test_court_order_restricts_a_guardian(room: Room) -> None:
    record = put_record(room.educator, child_ids=[room.child])
    now = datetime.now(UTC)
    with room.dsl.client() as http:
        ok(
            http.post(
                "/v1/court-orders",
                json={
                    "child_id": room.child,
                    "effect": "restrict_guardian",
                    "subject_id": room.guardian.principal_id,
                    "categories": ["observation"],
                    "reference": "case ref",
                    "valid_from": (now - timedelta(days=1)).isoformat(),
                    "valid_to": (now + timedelta(days=30)).isoformat(),
                },
            )
        )
    _, results = release(room.guardian, [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "denied"


def test_denial_is_identical_for_missing_uncommitted_deleted_and_forbidden(
    room: Room, admin: Device
) -> None:
    educator = room.educator
    forbidden = put_record(room.dsl, child_ids=[room.child], category="safeguarding")
    deleted = put_record(educator, child_ids=[room.child])
    with room.dsl.client() as http:
        ok(http.delete(f"/v1/records/{deleted.record_id}"))
    with educator.client() as http:
        pending = ok(
            http.post(
                "/v1/records",
                json={
                    "child_ids": [room.child],
                    "category": "observation",
                    "ciphertext_size": 4,
                },
            )
        )
    missing = "ef" * 16
    items = [
        (forbidden.record_id, 1),
        (deleted.record_id, 1),
        (pending["record_id"], 1),
        (missing, 1),
    ]
    response, results = release(educator, items)
    shapes = [{k: v for k, v in results[item].items() if k != "record_id"} for item in items]
    assert shapes == [{"version": 1, "status": "denied", "code": "unavailable"}] * 4
    assert "sealed_key" not in response.text


def test_release_body_limits_and_malformed_bodies(room: Room) -> None:
    with room.educator.client() as http:
        too_many = http.post(
            "/v1/keys/release", json={"items": [{"record_id": "ab" * 16, "version": 1}] * 1001}
        )
        malformed = http.post(
            "/v1/keys/release", json={"items": [{"record_id": "nothex", "version": 1}]}
        )
        oversized = http.post(
            "/v1/keys/release",
            content=b'{"items": [' + b" " * (2 * 1024 * 1024) + b"]}",
            headers={"Content-Type": "application/json"},
        )
        not_json = http.post(
            "/v1/keys/release", content=b"{", headers={"Content-Type": "application/json"}
        )
    statuses = [r.status_code for r in (too_many, malformed, not_json, oversized)]
    assert statuses == [422, 422, 422, 413], [r.text for r in (too_many, malformed, not_json)]
    for response in (too_many, malformed, not_json, oversized):
        assert response.headers["content-type"].startswith("application/problem+json")
    assert "record_id" in malformed.json()["detail"]
