"""Enrolment: a one-time code gives a device that signs; a code is single use, expires, and
is stored only as a hash. Both databases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.keyservice.helpers import Device, admin_enrols, enrol, ok
from tests.servers import KeyService

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
