"""Who reads a child's disclosure log, and which rows a guardian sees (docs/API.md)."""

from __future__ import annotations

import httpx
import pytest

from tests.keyservice.helpers import (
    Device,
    Room,
    add_guardian,
    admin_enrols,
    assign,
    assigned_staff,
    ok,
    proposed_and_approved,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration


@pytest.fixture
def logged(service: KeyService, admin: Device) -> dict[str, object]:
    """A child whose DSL has been released a medical letter, an observation, a withheld
    letter and a safeguarding note."""
    dsl, child = assigned_staff(service, admin, role="dsl")
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    records = {
        "medical": put_record(dsl, child_ids=[child], category="medical").record_id,
        "observation": put_record(dsl, child_ids=[child]).record_id,
        "withheld": put_record(dsl, child_ids=[child], withheld_from_guardians=True).record_id,
        "safeguarding": put_record(dsl, child_ids=[child], category="safeguarding").record_id,
    }
    release(dsl, [(record_id, 1) for record_id in records.values()])
    return {"child": child, "dsl": dsl, "guardian": guardian, "records": records}


def _log(device: Device, child: str) -> httpx.Response:
    with device.client() as http:
        return http.get(f"/v1/children/{child}/disclosures")


def _seen(device: Device, child: str) -> set[str]:
    return {entry["record_id"] for entry in ok(_log(device, child))}


def test_a_guardian_sees_only_rows_of_records_they_may_read_now(
    logged: dict, admin: Device
) -> None:
    records, child, guardian = logged["records"], logged["child"], logged["guardian"]
    assert _seen(guardian, child) == {records["medical"], records["observation"]}
    with logged["dsl"].client() as http:
        ok(
            http.post(
                "/v1/court-orders",
                json={
                    "child_id": child,
                    "effect": "restrict_guardian",
                    "subject_id": guardian.principal_id,
                    "categories": ["medical"],
                    "reference": "FAM-7",
                    "valid_from": "2020-01-01T00:00:00Z",
                    "valid_to": "2099-01-01T00:00:00Z",
                },
            )
        )
    assert _seen(guardian, child) == {records["observation"]}


def test_the_assigned_dsl_sees_every_row(logged: dict) -> None:
    assert _seen(logged["dsl"], logged["child"]) == set(logged["records"].values())


def test_a_relative_without_parental_responsibility_is_refused(
    logged: dict, service: KeyService, admin: Device
) -> None:
    relative = admin_enrols(service, admin, kind="guardian")
    proposed_and_approved(
        admin,
        "/v1/admin/guardianships",
        {
            "guardian_id": relative.principal_id,
            "child_id": logged["child"],
            "parental_responsibility": False,
        },
    )
    assert _log(relative, logged["child"]).status_code == 403


@pytest.mark.parametrize(
    ("roles", "assigned_as"),
    [(["dsl"], None), (["manager"], None), (["dsl"], "educator"), (["educator"], "educator")],
)
def test_staff_need_a_current_manager_or_dsl_assignment_to_the_child(
    logged: dict, service: KeyService, admin: Device, roles: list[str], assigned_as: str | None
) -> None:
    staff = admin_enrols(service, admin, kind="staff", roles=roles)
    if assigned_as is not None:
        assign(admin, staff_id=staff.principal_id, child_id=logged["child"], role=assigned_as)
    assert _log(staff, logged["child"]).status_code == 403


def test_a_manager_whose_assignment_ended_is_refused(
    logged: dict, service: KeyService, admin: Device
) -> None:
    manager = admin_enrols(service, admin, kind="staff", roles=["manager"])
    assignment = assign(
        admin, staff_id=manager.principal_id, child_id=logged["child"], role="manager"
    )
    assert _seen(manager, logged["child"]) == set(logged["records"].values())
    with admin.client() as http:
        ok(http.post(f"/v1/admin/assignments/{assignment}/end"))
    assert _log(manager, logged["child"]).status_code == 403


def test_disclosure_log(room: Room) -> None:
    record = put_record(room.educator, child_ids=[room.child])
    release(room.guardian, [(record.record_id, 1)])
    with room.guardian.client() as http:
        log = ok(http.get(f"/v1/children/{room.child}/disclosures"))
    mine = [e for e in log if e["record_id"] == record.record_id]
    assert {(e["principal_id"], e["basis"]) for e in mine} == {
        (room.guardian.principal_id, "guardianship")
    }
    with room.educator.client() as http:
        assert http.get(f"/v1/children/{room.child}/disclosures").status_code == 403


def test_guardians_do_not_learn_of_safeguarding_records_from_the_log(room: Room) -> None:
    note = put_record(room.dsl, child_ids=[room.child], category="safeguarding")
    release(room.dsl, [(note.record_id, 1)])
    with room.guardian.client() as http:
        seen_by_guardian = ok(http.get(f"/v1/children/{room.child}/disclosures"))
    with room.dsl.client() as http:
        seen_by_dsl = ok(http.get(f"/v1/children/{room.child}/disclosures"))
    assert note.record_id not in {e["record_id"] for e in seen_by_guardian}
    assert note.record_id in {e["record_id"] for e in seen_by_dsl}
