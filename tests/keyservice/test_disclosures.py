"""Who reads a child's disclosure log, and which rows a guardian sees (docs/API.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    Room,
    add_guardian,
    admin_enrols,
    approve,
    approver_for,
    assign,
    assigned_staff,
    guardian_consent,
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


# Shares (issue 14, part 5): the guardians are told of every share to an outside recipient,
# at its creation and at each release through it, unless it rests on a court order that
# says they are not to be.


@pytest.fixture
def shared(service: KeyService, admin: Device) -> dict[str, Any]:
    """A child with a DSL, a guardian, a social worker of the County with a device, a consent
    the guardian gave for observations and medical letters, and one of each."""
    dsl, child = assigned_staff(service, admin, role="dsl")
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    worker = admin_enrols(service, admin, kind="external", organisation="County")
    consent = guardian_consent(
        guardian,
        child_id=child,
        recipient_id=worker.principal_id,
        categories=["observation", "medical"],
        purpose="referral",
    )
    return {
        "child": child,
        "dsl": dsl,
        "guardian": guardian,
        "worker": worker,
        "consent": consent,
        "obs": put_record(dsl, child_ids=[child]),
        "medical": put_record(dsl, child_ids=[child], category="medical"),
    }


def _share(shared: dict[str, Any], basis: str, basis_id: str, purpose: str) -> Any:
    with shared["dsl"].client() as http:
        return ok(
            http.post(
                "/v1/shares",
                json={
                    "recipient_id": shared["worker"].principal_id,
                    "basis": basis,
                    "basis_id": basis_id,
                    "purpose": purpose,
                    "record_ids": [shared["obs"].record_id, shared["medical"].record_id],
                },
            )
        )


def _order(shared: dict[str, Any], admin: Device, *, guardians_told: bool | None) -> str:
    """A disclosing court order for the social worker, recorded by the DSL and approved by
    the second admin (``guardians_told`` None: left to its default)."""
    body: dict[str, Any] = {
        "child_id": shared["child"],
        "effect": "disclose",
        "subject_id": shared["worker"].principal_id,
        "categories": ["observation", "medical"],
        "reference": "FAM-12",
        "valid_from": "2020-01-01T00:00:00Z",
        "valid_to": "2099-01-01T00:00:00Z",
    }
    if guardians_told is not None:
        body["guardians_told"] = guardians_told
    with shared["dsl"].client() as http:
        response = http.post("/v1/court-orders", json=body)
    assert response.status_code == 202, response.text
    return str(approve(approver_for(admin), response.json()["proposal_id"])["result_id"])


def _rows(device: Device, child: str, share_id: str) -> list[tuple[Any, ...]]:
    return [
        (e["decision"], e["record_id"], e["basis"], e["organisation"], e["purpose"])
        for e in ok(_log(device, child))
        if e["share_id"] == share_id
    ]


def test_a_guardian_sees_a_share_and_each_release_through_it_with_its_purpose(
    shared: dict[str, Any],
) -> None:
    made = _share(shared, "consent", shared["consent"], "assessment by the County")
    obs, medical = shared["obs"].record_id, shared["medical"].record_id
    release(shared["worker"], [(obs, 1)])
    seen = ok(_log(shared["guardian"], shared["child"]))
    mine = [e for e in seen if e["share_id"] == made["share_id"]]
    assert [
        (e["decision"], e["record_id"], e["principal_id"], e["basis"], e["organisation"])
        for e in mine
    ] == [
        ("shared", r, shared["worker"].principal_id, "consent", "County")
        for r in sorted([obs, medical])
    ] + [("granted", obs, shared["worker"].principal_id, "consent", "County")]
    assert {e["purpose"] for e in mine} == {"assessment by the County"}
    assert all(e["at"] for e in mine)
    assert mine[-1]["device_id"] == shared["worker"].device_id


def test_a_share_under_an_order_that_keeps_guardians_untold_is_only_in_the_staff_view(
    shared: dict[str, Any], admin: Device
) -> None:
    hidden = _share(
        shared, "court_order", _order(shared, admin, guardians_told=False), "s.47 enquiry"
    )
    release(shared["worker"], [(shared["obs"].record_id, 1)])
    told = _share(shared, "court_order", _order(shared, admin, guardians_told=None), "report")
    child = shared["child"]
    assert _rows(shared["guardian"], child, hidden["share_id"]) == []
    assert len(_rows(shared["guardian"], child, told["share_id"])) == 2
    staff_view = _rows(shared["dsl"], child, hidden["share_id"])
    assert [row[0] for row in staff_view] == ["shared", "shared", "granted"]
    assert {row[2:] for row in staff_view} == {("court_order", "County", "s.47 enquiry")}


def test_whether_guardians_are_told_is_recorded_with_the_order_and_audited(
    shared: dict[str, Any], admin: Device, service_db: Engine
) -> None:
    hidden = _order(shared, admin, guardians_told=False)
    _, detail = last_audit_entry(
        service_db, principal_id=approver_for(admin).principal_id, action="court_order.create"
    )
    assert (detail["result_id"], detail["guardians_told"]) == (hidden, False)
    told = _order(shared, admin, guardians_told=None)
    _, detail = last_audit_entry(
        service_db, principal_id=approver_for(admin).principal_id, action="court_order.create"
    )
    assert (detail["result_id"], detail["guardians_told"]) == (told, True)
    with service_db.connect() as connection:
        stored = dict(
            connection.execute(
                text(
                    "SELECT court_order_id, guardians_told FROM court_orders "
                    "WHERE court_order_id IN (:h, :t)"
                ),
                {"h": hidden, "t": told},
            ).all()
        )
    assert stored == {hidden: False, told: True}
    # An order restricting a guardian is recorded at once, its flag in its own entry.
    with shared["dsl"].client() as http:
        ok(
            http.post(
                "/v1/court-orders",
                json={
                    "child_id": shared["child"],
                    "effect": "restrict_guardian",
                    "subject_id": shared["guardian"].principal_id,
                    "categories": ["medical"],
                    "reference": "FAM-13",
                    "valid_from": "2020-01-01T00:00:00Z",
                    "valid_to": "2099-01-01T00:00:00Z",
                    "guardians_told": False,
                },
            )
        )
    _, detail = last_audit_entry(
        service_db, principal_id=shared["dsl"].principal_id, action="court_order.create"
    )
    assert (detail["effect"], detail["guardians_told"]) == ("restrict_guardian", False)
