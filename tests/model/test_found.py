"""What the independent model found through the API, each kept fixed by a named case
(decision 0028; docs/THREAT_MODEL.md's regression list)."""

from __future__ import annotations

import pytest

from tests.keyservice.helpers import (
    add_guardian,
    admin_enrols,
    approver_for,
    assigned_staff,
    bootstrap_admin,
    guardian_consent,
    ok,
    proposed_and_approved,
    put_record,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def test_a_share_is_judged_on_its_own_basis_not_on_another_share_of_the_same_child(
    keyservice_embedded: KeyService,
) -> None:
    """API world seed 95: a share on a consent naming photographs only, of an incident report,
    was made because a share on a court order already covered that report for the same child."""
    admin = bootstrap_admin(keyservice_embedded)
    approver_for(admin)
    dsl, child = assigned_staff(keyservice_embedded, admin, role="dsl")
    guardian = admin_enrols(keyservice_embedded, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    agency = admin_enrols(keyservice_embedded, admin, kind="external", organisation="County")
    consent = guardian_consent(
        guardian,
        child_id=child,
        recipient_id=agency.principal_id,
        categories=["photo"],
        purpose="x",
    )
    order = proposed_and_approved(
        dsl,
        "/v1/court-orders",
        {
            "child_id": child,
            "effect": "disclose",
            "subject_id": agency.principal_id,
            "categories": ["incident"],
            "reference": "MODEL-95",
            "valid_from": "2020-01-01T00:00:00Z",
            "valid_to": "2099-01-01T00:00:00Z",
        },
    )
    report = put_record(dsl, child_ids=[child], category="incident")
    body = {"recipient_id": agency.principal_id, "purpose": "x", "record_ids": [report.record_id]}
    with dsl.client() as http:
        ok(http.post("/v1/shares", json={**body, "basis": "court_order", "basis_id": order}))
        on_consent = http.post("/v1/shares", json={**body, "basis": "consent", "basis_id": consent})
    assert on_consent.status_code == 422, on_consent.text
    assert "does not cover incident records" in on_consent.json()["detail"]
