"""Enrolment: a one-time code gives a device that signs; a code is single use, expires, and
is stored only as a hash. Both databases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    create_principal,
    enrol,
    issue_code,
    ok,
    refused_enrolment,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def _guardian_and_code(admin: Device) -> tuple[str, str]:
    """A new guardian with no device yet, and the first enrolment code the admin issued."""
    pid = create_principal(admin, kind="guardian", display_name="G")
    return pid, issue_code(admin, pid)


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
    _, code = _guardian_and_code(admin)
    enrol(service.base_url, code)
    refused = refused_enrolment(service, code)
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_expired_enrolment_code_is_refused(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    pid, code = _guardian_and_code(admin)
    with service_db.begin() as connection:
        connection.execute(
            text("UPDATE enrolment_codes SET expires_at = :past WHERE principal_id = :pid"),
            {"past": datetime.now(UTC) - timedelta(minutes=1), "pid": pid},
        )
    assert refused_enrolment(service, code).status_code == 400


def test_enrolment_codes_are_stored_only_as_hashes(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    pid, code = _guardian_and_code(admin)
    with service_db.connect() as connection:
        stored = connection.execute(
            text("SELECT code_hash FROM enrolment_codes WHERE principal_id = :pid"), {"pid": pid}
        ).scalar_one()
    assert code.replace("-", "") not in stored
    assert stored == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
