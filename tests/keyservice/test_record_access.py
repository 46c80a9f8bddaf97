"""Amending and deleting records: the policy comes first, and every refusal is one 404."""

from __future__ import annotations

import httpx
import pytest

from tests.keyservice.helpers import (
    Device,
    add_guardian,
    admin_enrols,
    assign,
    create_child,
    put_record,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration

MISSING = "ef" * 16


@pytest.fixture
def room(service: KeyService, admin: Device) -> dict[str, object]:
    """A child with an educator, an assigned DSL and a guardian, plus staff not assigned."""
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    dsl = admin_enrols(service, admin, kind="staff", roles=["dsl"])
    guardian = admin_enrols(service, admin, kind="guardian")
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    assign(admin, staff_id=dsl.principal_id, child_id=child, role="dsl")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    return {
        "child": child,
        "educator": educator,
        "dsl": dsl,
        "guardian": guardian,
        "unassigned_dsl": admin_enrols(service, admin, kind="staff", roles=["dsl"]),
        "unassigned_manager": admin_enrols(service, admin, kind="staff", roles=["manager"]),
    }


def _amend(device: Device, record_id: str, *, child: str, category: str) -> httpx.Response:
    with device.client() as http:
        return http.post(
            f"/v1/records/{record_id}/versions",
            json={
                "child_ids": [child],
                "category": category,
                "withheld_from_guardians": False,
                "ciphertext_size": 4,
            },
        )


def test_amend_does_not_reveal_whether_a_record_exists_or_its_category(room: dict) -> None:
    note = put_record(room["dsl"], child_ids=[room["child"]], category="safeguarding")
    for outsider in (room["guardian"], room["educator"], room["unassigned_dsl"]):
        answers = [
            _amend(outsider, note.record_id, child=room["child"], category="observation"),
            _amend(outsider, note.record_id, child=room["child"], category="safeguarding"),
            _amend(outsider, MISSING, child=room["child"], category="safeguarding"),
        ]
        assert {(a.status_code, a.json()["detail"]) for a in answers} == {
            (answers[0].status_code, answers[0].json()["detail"])
        }
        assert answers[0].status_code == 404


def test_amend_with_different_attributes_is_refused_for_an_entitled_caller(room: dict) -> None:
    note = put_record(room["dsl"], child_ids=[room["child"]], category="safeguarding")
    wrong = _amend(room["dsl"], note.record_id, child=room["child"], category="observation")
    assert wrong.status_code == 404
    right = _amend(room["dsl"], note.record_id, child=room["child"], category="safeguarding")
    assert right.status_code == 201
