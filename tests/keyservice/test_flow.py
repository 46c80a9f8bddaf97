"""The main flows against the real service, on SQLite + local blobs and PostgreSQL + S3."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.keyservice.helpers import (
    Device,
    add_guardian,
    admin_enrols,
    assign,
    b64,
    create_child,
    enrol,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService, run_keyservice_command

pytestmark = pytest.mark.integration


def test_enrolment_gives_a_device_that_signs(service: KeyService, admin: Device) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"], display_name="Ed")
    with educator.client() as http:
        me = ok(http.get("/v1/me"))
    assert me == {
        "principal_id": educator.principal_id,
        "device_id": educator.device_id,
        "kind": "staff",
        "display_name": "Ed",
        "roles": ["educator"],
        "organisation": None,
    }


def test_enrolment_code_is_single_use(service: KeyService, admin: Device) -> None:
    with admin.client() as http:
        pid = ok(http.post("/v1/admin/principals", json={"kind": "guardian", "display_name": "G"}))[
            "principal_id"
        ]
        code = ok(http.post(f"/v1/admin/principals/{pid}/enrolment-codes"))["code"]
    enrol(service.base_url, code)
    with pytest.raises(httpx.HTTPStatusError) as failed:
        enrol(service.base_url, code)
    assert failed.value.response.status_code == 400
    assert failed.value.response.headers["content-type"].startswith("application/problem+json")


def test_expired_enrolment_code_is_refused(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    with admin.client() as http:
        pid = ok(http.post("/v1/admin/principals", json={"kind": "guardian", "display_name": "G"}))[
            "principal_id"
        ]
        code = ok(http.post(f"/v1/admin/principals/{pid}/enrolment-codes"))["code"]
    with service_db.begin() as connection:
        connection.execute(
            text("UPDATE enrolment_codes SET expires_at = :past WHERE principal_id = :pid"),
            {"past": datetime.now(UTC) - timedelta(minutes=1), "pid": pid},
        )
    with pytest.raises(httpx.HTTPStatusError) as failed:
        enrol(service.base_url, code)
    assert failed.value.response.status_code == 400


def test_enrolment_codes_are_stored_only_as_hashes(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    with admin.client() as http:
        pid = ok(http.post("/v1/admin/principals", json={"kind": "guardian", "display_name": "G"}))[
            "principal_id"
        ]
        code = ok(http.post(f"/v1/admin/principals/{pid}/enrolment-codes"))["code"]
    with service_db.connect() as connection:
        stored = connection.execute(
            text("SELECT code_hash FROM enrolment_codes WHERE principal_id = :pid"), {"pid": pid}
        ).scalar_one()
    assert code.replace("-", "") not in stored
    assert stored == hashlib.sha256(code.replace("-", "").encode()).hexdigest()


def test_device_revocation_takes_effect_on_the_next_request(
    service: KeyService, admin: Device
) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        ok(http.get("/v1/me"))
        with admin.client() as admin_http:
            ok(admin_http.post(f"/v1/admin/devices/{educator.device_id}/revoke"))
        assert http.get("/v1/me").status_code == 401


def test_principal_revocation_takes_effect_on_the_next_request(
    service: KeyService, admin: Device
) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        ok(http.get("/v1/me"))
        with admin.client() as admin_http:
            ok(admin_http.post(f"/v1/admin/principals/{educator.principal_id}/revoke"))
        assert http.get("/v1/me").status_code == 401


def test_admin_endpoints_refuse_non_admins(service: KeyService, admin: Device) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        refused = http.post("/v1/admin/children", json={"display_name": "X"})
    assert refused.status_code == 403


@pytest.fixture
def room(service: KeyService, admin: Device) -> dict[str, object]:
    """A child with an educator, a DSL and a guardian, and a second child in another room."""
    child = create_child(admin)
    other_child = create_child(admin, room="room 2")
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    dsl = admin_enrols(service, admin, kind="staff", roles=["dsl"])
    guardian = admin_enrols(service, admin, kind="guardian")
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    assign(admin, staff_id=dsl.principal_id, child_id=child, role="dsl")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    return {
        "child": child,
        "other_child": other_child,
        "educator": educator,
        "dsl": dsl,
        "guardian": guardian,
    }


def test_children_lists_only_related_children(room: dict) -> None:
    with room["educator"].client() as http:
        listed = ok(http.get("/v1/children"))
    assert [c["child_id"] for c in listed] == [room["child"]]
    assert listed[0]["relation"] == "assignment:educator"
    with room["guardian"].client() as http:
        assert [c["child_id"] for c in ok(http.get("/v1/children"))] == [room["child"]]


def test_create_commit_list_and_release(room: dict) -> None:
    educator: Device = room["educator"]
    stored = put_record(educator, child_ids=[room["child"]])
    with educator.client() as http:
        listed = ok(http.get(f"/v1/children/{room['child']}/records"))
    assert [(r["record_id"], r["version"]) for r in listed] == [(stored.record_id, 1)]
    response, results = release(educator, [(stored.record_id, 1)], include_urls=True)
    granted = results[(stored.record_id, 1)]
    assert granted["status"] == "granted"
    assert educator.open_key(response, granted) == stored.record_key
    assert "record_key" not in response.text
    downloaded = httpx.get(granted["download_url"], timeout=30.0)
    assert downloaded.content == stored.ciphertext


def test_range_download(room: dict) -> None:
    educator: Device = room["educator"]
    stored = put_record(educator, child_ids=[room["child"]], ciphertext=bytes(range(200)))
    _, results = release(educator, [(stored.record_id, 1)], include_urls=True)
    url = results[(stored.record_id, 1)]["download_url"]
    part = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=30.0)
    assert part.status_code == 206
    assert part.content == bytes(range(10, 20))


def test_amend_makes_a_new_version(room: dict) -> None:
    educator: Device = room["educator"]
    first = put_record(educator, child_ids=[room["child"]])
    second = put_record(
        educator, child_ids=[room["child"]], amend=first.record_id, ciphertext=b"second version"
    )
    assert second.version == 2
    with educator.client() as http:
        history = ok(http.get(f"/v1/records/{first.record_id}/versions"))
        listed = ok(http.get(f"/v1/children/{room['child']}/records"))
    assert [v["version"] for v in history] == [1, 2]
    assert [(r["record_id"], r["version"]) for r in listed] == [(first.record_id, 2)]


def test_commit_with_a_wrong_digest_is_refused_and_stays_invisible(room: dict) -> None:
    educator: Device = room["educator"]
    with educator.client() as http:
        created = ok(
            http.post(
                "/v1/records",
                json={
                    "child_ids": [room["child"]],
                    "category": "observation",
                    "ciphertext_size": 4,
                },
            )
        )
        assert httpx.put(created["upload"]["url"], content=b"abcd", timeout=30.0).is_success
        refused = http.post(
            f"/v1/records/{created['record_id']}/versions/1/commit",
            json={
                "ciphertext_size": 4,
                "ciphertext_sha256": b64(hashlib.sha256(b"abce").digest()),
                "encrypted_metadata": b64(b"m"),
            },
        )
        assert refused.status_code == 409
        assert ok(http.get(f"/v1/children/{room['child']}/records")) == []
    _, results = release(educator, [(created["record_id"], 1)])
    assert results[(created["record_id"], 1)] == {
        "record_id": created["record_id"],
        "version": 1,
        "status": "denied",
        "code": "unavailable",
    }


def test_denial_is_identical_for_missing_uncommitted_deleted_and_forbidden(
    room: dict, admin: Device
) -> None:
    educator: Device = room["educator"]
    forbidden = put_record(room["dsl"], child_ids=[room["child"]], category="safeguarding")
    deleted = put_record(educator, child_ids=[room["child"]])
    with room["dsl"].client() as http:
        ok(http.delete(f"/v1/records/{deleted.record_id}"))
    with educator.client() as http:
        pending = ok(
            http.post(
                "/v1/records",
                json={
                    "child_ids": [room["child"]],
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


def test_decision_table_end_to_end(room: dict, service: KeyService, admin: Device) -> None:
    child = room["child"]
    observation = put_record(room["educator"], child_ids=[child])
    safeguarding = put_record(room["dsl"], child_ids=[child], category="safeguarding")
    withheld = put_record(room["dsl"], child_ids=[child], withheld_from_guardians=True)
    group = put_record(
        admin_side_educator(service, admin, room), child_ids=[child, room["other_child"]]
    )
    external = admin_enrols(service, admin, kind="external", organisation="Health visiting")
    cases = [
        (room["educator"], observation, "granted"),
        (room["educator"], safeguarding, "denied"),
        (room["dsl"], safeguarding, "granted"),
        (room["guardian"], observation, "granted"),
        (room["guardian"], safeguarding, "denied"),
        (room["guardian"], withheld, "denied"),
        (room["educator"], group, "denied"),
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


def admin_side_educator(service: KeyService, admin: Device, room: dict) -> Device:
    """An educator assigned to both children, who may create the group record."""
    both = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=both.principal_id, child_id=room["child"], role="educator")
    assign(admin, staff_id=both.principal_id, child_id=room["other_child"], role="educator")
    return both


def test_court_order_restricts_a_guardian(room: dict) -> None:
    record = put_record(room["educator"], child_ids=[room["child"]])
    now = datetime.now(UTC)
    with room["dsl"].client() as http:
        ok(
            http.post(
                "/v1/court-orders",
                json={
                    "child_id": room["child"],
                    "effect": "restrict_guardian",
                    "subject_id": room["guardian"].principal_id,
                    "categories": ["observation"],
                    "reference": "case ref",
                    "valid_from": (now - timedelta(days=1)).isoformat(),
                    "valid_to": (now + timedelta(days=30)).isoformat(),
                },
            )
        )
    _, results = release(room["guardian"], [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "denied"


def test_staff_cannot_create_records_for_unassigned_children(room: dict) -> None:
    with room["educator"].client() as http:
        refused = http.post(
            "/v1/records",
            json={
                "child_ids": [room["other_child"]],
                "category": "observation",
                "ciphertext_size": 4,
            },
        )
    assert refused.status_code == 403


def test_release_body_limits_and_malformed_bodies(room: dict) -> None:
    with room["educator"].client() as http:
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


def test_delete_shreds_the_wrapped_keys(room: dict, service_db: Engine) -> None:
    record = put_record(room["educator"], child_ids=[room["child"]])
    with room["dsl"].client() as http:
        ok(http.delete(f"/v1/records/{record.record_id}"))
    with service_db.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM wrapped_record_keys WHERE record_id = :r"),
            {"r": record.record_id},
        ).scalar_one()
    assert left == 0
    _, results = release(room["educator"], [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "denied"


def test_disclosure_log(room: dict) -> None:
    record = put_record(room["educator"], child_ids=[room["child"]])
    release(room["guardian"], [(record.record_id, 1)])
    with room["guardian"].client() as http:
        log = ok(http.get(f"/v1/children/{room['child']}/disclosures"))
    mine = [e for e in log if e["record_id"] == record.record_id]
    assert {(e["principal_id"], e["basis"]) for e in mine} == {
        (room["guardian"].principal_id, "guardianship")
    }
    with room["educator"].client() as http:
        assert http.get(f"/v1/children/{room['child']}/disclosures").status_code == 403


def test_guardians_do_not_learn_of_safeguarding_records_from_the_log(room: dict) -> None:
    note = put_record(room["dsl"], child_ids=[room["child"]], category="safeguarding")
    release(room["dsl"], [(note.record_id, 1)])
    with room["guardian"].client() as http:
        seen_by_guardian = ok(http.get(f"/v1/children/{room['child']}/disclosures"))
    with room["dsl"].client() as http:
        seen_by_dsl = ok(http.get(f"/v1/children/{room['child']}/disclosures"))
    assert note.record_id not in {e["record_id"] for e in seen_by_guardian}
    assert note.record_id in {e["record_id"] for e in seen_by_dsl}


def test_consent_requires_a_guardian_giver(room: dict, service: KeyService, admin: Device) -> None:
    external = admin_enrols(service, admin, kind="external", organisation="School")
    body = {
        "child_id": room["child"],
        "recipient_id": external.principal_id,
        "categories": ["observation"],
        "purpose": "transition to school",
    }
    with room["guardian"].client() as http:
        consent = ok(
            http.post("/v1/consents", json={**body, "given_by": room["guardian"].principal_id})
        )
        ok(http.post(f"/v1/consents/{consent['consent_id']}/withdraw"))
    with room["dsl"].client() as http:
        refused = http.post("/v1/consents", json={**body, "given_by": room["dsl"].principal_id})
    assert refused.status_code == 422


def test_sweep_removes_abandoned_uploads(
    room: dict, service: KeyService, service_db: Engine
) -> None:
    with room["educator"].client() as http:
        pending = ok(
            http.post(
                "/v1/records",
                json={
                    "child_ids": [room["child"]],
                    "category": "observation",
                    "ciphertext_size": 4,
                },
            )
        )
    swept = run_keyservice_command(service.env, "sweep", "--older-than-hours", "0", check=False)
    assert swept.returncode == 0, swept.stderr[-2000:]
    with service_db.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM record_versions WHERE record_id = :r"),
            {"r": pending["record_id"]},
        ).scalar_one()
        wraps = connection.execute(
            text("SELECT count(*) FROM wrapped_record_keys WHERE record_id = :r"),
            {"r": pending["record_id"]},
        ).scalar_one()
    assert (left, wraps) == (0, 0)
