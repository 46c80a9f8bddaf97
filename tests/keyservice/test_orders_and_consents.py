"""Court orders, consents and guardianships: recorded only by those with standing for the child,
ended or corrected with a reason and never deleted (issue 12, finding 4).

Before this, any manager or DSL recorded orders and consents for any child (201), the 422s
told them whether a child or guardian existed, and nothing ended an order or a guardianship.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.keyservice.helpers import (
    Device,
    Room,
    add_guardian,
    admin_enrols,
    approve,
    approver_for,
    assign,
    assigned_staff,
    create_child,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration

UNKNOWN = "0" * 32


def _order(child_id: str, subject_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "child_id": child_id,
        "effect": "restrict_guardian",
        "subject_id": subject_id,
        "categories": ["observation"],
        "reference": "FAM-12",
        "valid_from": "2020-01-01T00:00:00Z",
        "valid_to": "2099-01-01T00:00:00Z",
        **extra,
    }


def _consent(child_id: str, given_by: str, recipient_id: str) -> dict[str, Any]:
    return {
        "child_id": child_id,
        "given_by": given_by,
        "recipient_id": recipient_id,
        "categories": ["medical"],
        "purpose": "speech therapy referral",
    }


@pytest.fixture
def family(service: KeyService, admin: Device) -> dict[str, Any]:
    """A child with a DSL, a guardian and an observation the guardian can read."""
    dsl, child = assigned_staff(service, admin, role="dsl")
    guardian = admin_enrols(service, admin, kind="guardian")
    guardianship = add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    record = put_record(dsl, child_ids=[child])
    agency = admin_enrols(service, admin, kind="external", organisation="County")
    return {
        "child": child,
        "dsl": dsl,
        "guardian": guardian,
        "guardianship": guardianship,
        "record": record,
        "agency": agency,
    }


def _reads(device: Device, record: Any) -> bool:
    _, results = release(device, [(record.record_id, record.version)])
    return results[(record.record_id, record.version)]["status"] == "granted"


def test_a_manager_of_another_child_cannot_restrict_a_guardian_here(
    service: KeyService, admin: Device, family: dict[str, Any]
) -> None:
    elsewhere = create_child(admin)
    manager = admin_enrols(service, admin, kind="staff", roles=["manager"])
    assign(admin, staff_id=manager.principal_id, child_id=elsewhere, role="manager")
    with manager.client() as http:
        refused = http.post(
            "/v1/court-orders", json=_order(family["child"], family["guardian"].principal_id)
        )
    assert refused.status_code == 404, refused.text
    assert _reads(family["guardian"], family["record"])


def test_refusals_without_standing_do_not_tell_what_exists(
    service: KeyService, admin: Device, family: dict[str, Any]
) -> None:
    manager = admin_enrols(service, admin, kind="staff", roles=["manager"])
    child, guardian, agency = family["child"], family["guardian"], family["agency"]
    attempts = [
        ("/v1/consents", _consent(child, guardian.principal_id, agency.principal_id)),
        ("/v1/consents", _consent(child, UNKNOWN, agency.principal_id)),
        ("/v1/consents", _consent(UNKNOWN, guardian.principal_id, agency.principal_id)),
        ("/v1/court-orders", _order(child, guardian.principal_id)),
        ("/v1/court-orders", _order(child, UNKNOWN)),
        ("/v1/court-orders", _order(UNKNOWN, guardian.principal_id)),
    ]
    answers = set()
    with manager.client() as http:
        for path, body in attempts:
            response = http.post(path, json=body)
            answers.add((response.status_code, response.json()["detail"]))
    assert answers == {(404, "no child with this id for which you may record this")}


def test_ending_an_order_that_kept_a_guardian_out_waits_for_a_second_person(
    admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    dsl, guardian, record = family["dsl"], family["guardian"], family["record"]
    with dsl.client() as http:
        order = ok(
            http.post("/v1/court-orders", json=_order(family["child"], guardian.principal_id))
        )
    assert not _reads(guardian, record)
    with dsl.client() as http:
        no_reason = http.post(f"/v1/court-orders/{order['court_order_id']}/end", json={})
        assert no_reason.status_code == 422
        ending = http.post(
            f"/v1/court-orders/{order['court_order_id']}/end",
            json={"reason": "order discharged at review hearing"},
        )
        assert ending.status_code == 202, ending.text
        assert http.post(f"/v1/proposals/{ending.json()['proposal_id']}/approve").status_code == 404
    assert not _reads(guardian, record)
    approve(approver_for(admin), ending.json()["proposal_id"])
    assert _reads(guardian, record)
    with service_db.connect() as connection:
        row = connection.execute(
            text(
                "SELECT ended_at, ended_by, end_reason FROM court_orders WHERE court_order_id = :id"
            ),
            {"id": order["court_order_id"]},
        ).one()
    assert row.ended_at is not None and row.ended_by == dsl.principal_id
    assert row.end_reason == "order discharged at review hearing"


def test_a_corrected_order_ends_the_one_it_replaces(
    family: dict[str, Any], service_db: Engine
) -> None:
    dsl, guardian = family["dsl"], family["guardian"]
    with dsl.client() as http:
        first = ok(
            http.post(
                "/v1/court-orders",
                json=_order(family["child"], guardian.principal_id, categories=["medical"]),
            )
        )["court_order_id"]
        # A correction that keeps out at least what the old order did takes effect at once.
        second = ok(
            http.post(
                "/v1/court-orders",
                json=_order(
                    family["child"],
                    guardian.principal_id,
                    categories=["medical", "observation"],
                    replaces=first,
                ),
            )
        )["court_order_id"]
        again = http.post(
            "/v1/court-orders", json=_order(family["child"], guardian.principal_id, replaces=first)
        )
    assert again.status_code == 422
    with service_db.connect() as connection:
        reason = connection.execute(
            text("SELECT end_reason FROM court_orders WHERE court_order_id = :id"), {"id": first}
        ).scalar_one()
    assert reason == f"corrected by court order {second}"
    assert not _reads(guardian, family["record"])


def test_a_guardian_records_and_withdraws_their_own_consent_with_a_reason(
    family: dict[str, Any], service_db: Engine
) -> None:
    guardian, agency = family["guardian"], family["agency"]
    with guardian.client() as http:
        consent = http.post(
            "/v1/consents",
            json=_consent(family["child"], guardian.principal_id, agency.principal_id),
        )
        assert consent.status_code == 201, consent.text
        consent_id = consent.json()["consent_id"]
        ok(http.post(f"/v1/consents/{consent_id}/withdraw", json={"reason": "changed my mind"}))
    with service_db.connect() as connection:
        row = connection.execute(
            text("SELECT withdrawn_by, withdraw_reason FROM consents WHERE consent_id = :id"),
            {"id": consent_id},
        ).one()
    assert (row.withdrawn_by, row.withdraw_reason) == (guardian.principal_id, "changed my mind")


def test_a_consent_recorded_by_staff_waits_for_a_second_person(
    admin: Device, family: dict[str, Any]
) -> None:
    dsl, guardian, agency = family["dsl"], family["guardian"], family["agency"]
    body = _consent(family["child"], guardian.principal_id, agency.principal_id)
    with dsl.client() as http:
        proposed = http.post("/v1/consents", json=body)
    assert proposed.status_code == 202, proposed.text
    decided = approve(approver_for(admin), proposed.json()["proposal_id"])
    assert decided["state"] == "approved" and decided["result_id"]


def test_a_guardianship_is_ended_with_a_reason_and_kept(
    service: KeyService, admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    guardian, guardianship = family["guardian"], family["guardianship"]
    outsider = admin_enrols(service, admin, kind="staff", roles=["manager"])
    with outsider.client() as http:
        refused = http.post(f"/v1/guardianships/{guardianship}/end", json={"reason": "x"})
    assert refused.status_code == 404
    assert _reads(guardian, family["record"])
    with family["dsl"].client() as http:
        ok(http.post(f"/v1/guardianships/{guardianship}/end", json={"reason": "care order"}))
    assert not _reads(guardian, family["record"])
    with service_db.connect() as connection:
        row = connection.execute(
            text("SELECT ended_by, end_reason FROM guardianships WHERE guardianship_id = :id"),
            {"id": guardianship},
        ).one()
    assert (row.ended_by, row.end_reason) == (family["dsl"].principal_id, "care order")


def test_a_consent_may_not_outlive_a_year(family: dict[str, Any]) -> None:
    guardian, agency = family["guardian"], family["agency"]
    body = {
        **_consent(family["child"], guardian.principal_id, agency.principal_id),
        "valid_from": "2030-01-01T00:00:00Z",
        "valid_to": "2031-06-01T00:00:00Z",
    }
    with guardian.client() as http:
        refused = http.post("/v1/consents", json=body)
    assert refused.status_code == 422
    assert "one year" in refused.json()["detail"]


def test_a_correction_that_keeps_out_less_waits_for_a_second_person(
    admin: Device, family: dict[str, Any]
) -> None:
    dsl, guardian, record = family["dsl"], family["guardian"], family["record"]
    with dsl.client() as http:
        first = ok(
            http.post(
                "/v1/court-orders",
                json=_order(
                    family["child"], guardian.principal_id, categories=["medical", "observation"]
                ),
            )
        )["court_order_id"]
        weaker = {
            "narrower": {"categories": ["medical"]},
            "shorter": {
                "categories": ["medical", "observation"],
                "valid_to": "2030-01-01T00:00:00Z",
            },
        }
        proposals = {}
        for name, change in weaker.items():
            response = http.post(
                "/v1/court-orders",
                json=_order(family["child"], guardian.principal_id, replaces=first, **change),
            )
            assert response.status_code == 202, (name, response.text)
            proposals[name] = response.json()["proposal_id"]
    assert not _reads(guardian, record)
    approve(approver_for(admin), proposals["narrower"])
    # The observation is no longer kept from the guardian: the old order ended.
    assert _reads(guardian, record)


def test_a_restrict_order_names_a_guardian_of_this_child(
    service: KeyService, admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    elsewhere = create_child(admin)
    stranger = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=stranger.principal_id, child_id=elsewhere)
    with family["dsl"].client() as http:
        refused = http.post("/v1/court-orders", json=_order(family["child"], stranger.principal_id))
    assert refused.status_code == 422, refused.text
    assert "guardian of this child" in refused.json()["detail"]
    with service_db.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM court_orders WHERE child_id = :c"),
            {"c": family["child"]},
        ).scalar_one()
    assert count == 0


def test_consent_requires_a_guardian_giver(room: Room, service: KeyService, admin: Device) -> None:
    external = admin_enrols(service, admin, kind="external", organisation="School")
    body = {
        "child_id": room.child,
        "recipient_id": external.principal_id,
        "categories": ["observation"],
        "purpose": "transition to school",
    }
    with room.guardian.client() as http:
        consent = ok(
            http.post("/v1/consents", json={**body, "given_by": room.guardian.principal_id})
        )
        ok(http.post(f"/v1/consents/{consent['consent_id']}/withdraw"))
    with room.dsl.client() as http:
        refused = http.post("/v1/consents", json={**body, "given_by": room.dsl.principal_id})
    assert refused.status_code == 422
