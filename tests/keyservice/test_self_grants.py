"""Nobody records a relationship that gives rights to themselves (docs/decisions/0004)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    add_guardian,
    admin_enrols,
    assign,
    assigned_staff,
    create_child,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def _assert_refused_and_audited(
    response: Any, service_db: Engine, actor: Device, action: str
) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    outcome, detail = last_audit_entry(service_db, principal_id=actor.principal_id, action=action)
    assert (outcome, detail["reason"], detail["subject_id"]) == (
        "deny",
        "self_grant",
        actor.principal_id,
    )


def test_an_admin_cannot_assign_themselves(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    dsl, child = assigned_staff(service, admin, role="dsl")
    record = put_record(dsl, child_ids=[child])
    with admin.client() as http:
        refused = http.post(
            "/v1/admin/assignments",
            json={"staff_id": admin.principal_id, "child_id": child, "role": "educator"},
        )
    _assert_refused_and_audited(refused, service_db, admin, "assignment.create")
    _, results = release(admin, [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "denied"


def test_an_admin_cannot_make_themselves_a_guardian(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    child = create_child(admin)
    with admin.client() as http:
        refused = http.post(
            "/v1/admin/guardianships",
            json={
                "guardian_id": admin.principal_id,
                "child_id": child,
                "parental_responsibility": True,
            },
        )
    _assert_refused_and_audited(refused, service_db, admin, "guardianship.create")


def test_no_one_records_a_consent_naming_themselves_as_recipient(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    manager, child = assigned_staff(service, admin, role="manager")
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    with manager.client() as http:
        refused = http.post(
            "/v1/consents",
            json={
                "child_id": child,
                "given_by": guardian.principal_id,
                "recipient_id": manager.principal_id,
                "categories": ["observation"],
                "purpose": "a purpose",
            },
        )
    _assert_refused_and_audited(refused, service_db, manager, "consent.create")


@pytest.mark.parametrize("effect", ["disclose", "restrict_guardian"])
def test_no_one_records_a_court_order_about_themselves(
    service: KeyService, admin: Device, service_db: Engine, effect: str
) -> None:
    dsl, child = assigned_staff(service, admin, role="dsl")
    with dsl.client() as http:
        refused = http.post(
            "/v1/court-orders",
            json={
                "child_id": child,
                "effect": effect,
                "subject_id": dsl.principal_id,
                "categories": ["observation"],
                "reference": "FAM-1",
                "valid_from": "2020-01-01T00:00:00Z",
                "valid_to": "2099-01-01T00:00:00Z",
            },
        )
    _assert_refused_and_audited(refused, service_db, dsl, "court_order.create")


def test_an_admin_still_assigns_other_staff(service: KeyService, admin: Device) -> None:
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        assert ok(http.get("/v1/children")) == []
    assignment_id = assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    assert assignment_id
    with educator.client() as http:
        listed = ok(http.get("/v1/children"))
    assert [(c["child_id"], c["relation"]) for c in listed] == [(child, "assignment:educator")]
    record = put_record(educator, child_ids=[child])
    _, results = release(educator, [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "granted"
    # The id handed back names this assignment: ending it takes the child away again.
    with admin.client() as http:
        assert http.post(f"/v1/admin/assignments/{assignment_id}/end").status_code == 204
    with educator.client() as http:
        assert ok(http.get("/v1/children")) == []
