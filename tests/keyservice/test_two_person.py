"""No admin alone, with any number of accounts whose codes they saw, gets a record released
(issue 12, finding 1; docs/decisions/0004-admins-cannot-read.md).

Each of the three routes the review used is tried here, and each fails on the code before
two-person approval: there, the takeover's code came back at once (201), the stand-in's
assignment took effect at once (201), and a new admin was created at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, text

from keyservice.db.tables import enrolment_codes
from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    approve,
    approver_for,
    assign,
    create_child,
    create_principal,
    enrol,
    host_code,
    issue_code,
    ok,
    own_code,
    put_record,
    refused_enrolment,
    release,
)
from tests.servers import KeyService, run_keyservice_command

pytestmark = pytest.mark.integration


def _propose_assignment(admin: Device, *, staff_id: str, child_id: str, role: str) -> str:
    with admin.client() as http:
        response = http.post(
            "/v1/admin/assignments",
            json={"staff_id": staff_id, "child_id": child_id, "role": role},
        )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "pending" and body["result_id"] is None
    return str(body["proposal_id"])


def _approve_refused(device: Device, proposal_id: str) -> httpx.Response:
    with device.client() as http:
        response = http.post(f"/v1/proposals/{proposal_id}/approve")
    assert response.status_code == 404, response.text
    return response


def _code_proposed(admin: Device, principal_id: str) -> dict[str, Any]:
    """Asked by ``admin`` for a code for ``principal_id``, the service only proposes it: the
    proposal, which shows no code."""
    with admin.client() as http:
        response = http.post(f"/v1/admin/principals/{principal_id}/enrolment-codes")
    assert response.status_code == 202, response.text
    proposal: dict[str, Any] = response.json()
    assert proposal["enrolment_code"] is None
    return proposal


def _denial_reason(service_db: Engine, device: Device, proposal_id: str) -> str:
    with service_db.connect() as connection:
        row = connection.execute(
            text(
                "SELECT detail FROM audit_entries WHERE actor_device = :d "
                "AND action = 'proposal.approve' AND outcome = 'deny' ORDER BY seq DESC LIMIT 1"
            ),
            {"d": device.device_id},
        ).one()
    detail = json.loads(row.detail)
    assert detail["proposal_id"] == proposal_id
    return str(detail["reason"])


@pytest.fixture
def guarded(service: KeyService, admin: Device) -> dict[str, Any]:
    """A child with an assigned DSL and a safeguarding record about them. The DSL enrolled
    with a code issued at the host, so they are independent of the admin."""
    child = create_child(admin)
    dsl_id = create_principal(admin, kind="staff", display_name="DSL", roles=["dsl"])
    dsl = enrol(service.base_url, host_code(service, dsl_id))
    assign(admin, staff_id=dsl.principal_id, child_id=child, role="dsl")
    record = put_record(dsl, child_ids=[child], category="safeguarding")
    return {"child": child, "dsl": dsl, "record": record}


def test_takeover_an_admin_gets_no_code_for_someone_who_has_a_device(
    guarded: dict[str, Any], admin: Device, service_db: Engine
) -> None:
    dsl = guarded["dsl"]
    body = _code_proposed(admin, dsl.principal_id)
    assert "code" not in body and body["enrolment_code"] is None
    assert (body["action"], body["beneficiary_id"]) == ("device.enrol", dsl.principal_id)
    _approve_refused(admin, body["proposal_id"])
    assert _denial_reason(service_db, admin, body["proposal_id"]) == "own_proposal"
    # The person themselves cannot approve a device for their own account either.
    _approve_refused(dsl, body["proposal_id"])


def test_takeover_an_admins_stand_in_cannot_approve_the_code(
    service: KeyService, guarded: dict[str, Any], admin: Device, service_db: Engine
) -> None:
    stand_in = admin_enrols(service, admin, kind="staff", roles=["manager", "dsl"])
    proposal = _code_proposed(admin, guarded["dsl"].principal_id)
    _approve_refused(stand_in, proposal["proposal_id"])
    assert (
        _denial_reason(service_db, stand_in, proposal["proposal_id"]) == "same_circle_as_proposer"
    )


def test_stand_in_an_assignment_waits_and_no_one_in_the_admins_circle_approves_it(
    service: KeyService, guarded: dict[str, Any], admin: Device, service_db: Engine
) -> None:
    stand_in = admin_enrols(service, admin, kind="staff", roles=["dsl"])
    helper = admin_enrols(service, admin, kind="staff", roles=["manager"])
    proposal_id = _propose_assignment(
        admin, staff_id=stand_in.principal_id, child_id=guarded["child"], role="dsl"
    )
    record = guarded["record"]
    _, results = release(stand_in, [(record.record_id, record.version)])
    assert results[(record.record_id, record.version)]["status"] == "denied"
    for device, reason in (
        (admin, "own_proposal"),
        (stand_in, "beneficiary"),
        (helper, "same_circle_as_proposer"),
    ):
        _approve_refused(device, proposal_id)
        assert _denial_reason(service_db, device, proposal_id) == reason
    _, results = release(stand_in, [(record.record_id, record.version)])
    assert results[(record.record_id, record.version)]["status"] == "denied"


def test_stand_in_the_childs_own_dsl_approving_is_the_second_person(
    service: KeyService, guarded: dict[str, Any], admin: Device
) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    proposal_id = _propose_assignment(
        admin, staff_id=educator.principal_id, child_id=guarded["child"], role="educator"
    )
    decided = approve(guarded["dsl"], proposal_id)
    assert decided["state"] == "approved" and decided["decided_by"] == guarded["dsl"].principal_id
    observation = put_record(guarded["dsl"], child_ids=[guarded["child"]])
    _, results = release(educator, [(observation.record_id, 1)])
    assert results[(observation.record_id, 1)]["status"] == "granted"


def test_approval_names_both_devices_in_the_audit(
    service: KeyService, guarded: dict[str, Any], admin: Device, service_db: Engine
) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    proposal_id = _propose_assignment(
        admin, staff_id=educator.principal_id, child_id=guarded["child"], role="educator"
    )
    approver = approver_for(admin)
    decided = approve(approver, proposal_id)
    with service_db.connect() as connection:
        row = connection.execute(
            text(
                "SELECT actor_device, detail FROM audit_entries WHERE action = 'proposal.approve' "
                "AND outcome = 'allow' ORDER BY seq DESC LIMIT 1"
            )
        ).one()
        change = connection.execute(
            text(
                "SELECT detail FROM audit_entries WHERE action = 'assignment.create' "
                "AND outcome = 'allow' ORDER BY seq DESC LIMIT 1"
            )
        ).scalar_one()
    detail = json.loads(row.detail)
    assert row.actor_device == approver.device_id
    assert (detail["proposal_id"], detail["proposed_device"]) == (proposal_id, admin.device_id)
    # Whoever reads the audit for assignments finds this one, made by approval.
    assert json.loads(change)["result_id"] == decided["result_id"]


def test_second_admin_a_new_admin_is_a_proposal_the_proposer_cannot_approve(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    stand_in = admin_enrols(service, admin, kind="staff", roles=["manager"])
    with admin.client() as http:
        response = http.post(
            "/v1/admin/principals",
            json={"kind": "staff", "display_name": "Another Admin", "roles": ["admin"]},
        )
    assert response.status_code == 202, response.text
    proposal = response.json()
    assert "principal_id" not in proposal and proposal["action"] == "admin.create"
    _approve_refused(admin, proposal["proposal_id"])
    _approve_refused(stand_in, proposal["proposal_id"])
    assert (
        _denial_reason(service_db, stand_in, proposal["proposal_id"]) == "same_circle_as_proposer"
    )
    with service_db.connect() as connection:
        created = connection.execute(
            text("SELECT count(*) FROM principals WHERE display_name = 'Another Admin'")
        ).scalar_one()
    assert created == 0


def test_second_admin_approved_by_another_hands_the_code_to_the_approver(
    service: KeyService, admin: Device
) -> None:
    with admin.client() as http:
        proposal = ok(
            http.post(
                "/v1/admin/principals",
                json={"kind": "staff", "display_name": "Third Admin", "roles": ["admin"]},
            )
        )
        mine = ok(http.get(f"/v1/proposals/{proposal['proposal_id']}"))
    assert mine["enrolment_code"] is None
    decided = approve(approver_for(admin), proposal["proposal_id"])
    assert decided["enrolment_code"]
    third = enrol(service.base_url, decided["enrolment_code"])
    assert third.principal_id == decided["result_id"]
    with admin.client() as http:
        again = ok(http.get(f"/v1/proposals/{proposal['proposal_id']}"))
    assert again["state"] == "approved" and again["enrolment_code"] is None


def test_a_person_adds_lists_and_revokes_their_own_devices(
    service: KeyService, guarded: dict[str, Any]
) -> None:
    dsl = guarded["dsl"]
    phone = enrol(service.base_url, own_code(dsl), device_name="phone")
    assert phone.principal_id == dsl.principal_id
    with phone.client() as http:
        listed = {d["device_id"]: d for d in ok(http.get("/v1/me/devices"))}
    assert listed[phone.device_id]["origin"] == "added" and listed[phone.device_id]["current"]
    assert listed[dsl.device_id]["current"] is False
    with dsl.client() as http:
        ok(http.post(f"/v1/admin/devices/{phone.device_id}/revoke"))
    with phone.client() as http:
        assert http.get("/v1/me").status_code == 401


def test_a_code_from_a_device_revoked_since_enrols_nothing(
    service: KeyService, admin: Device
) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    code = own_code(educator)
    with educator.client() as http:
        ok(http.post(f"/v1/admin/devices/{educator.device_id}/revoke"))
    assert refused_enrolment(service, code).status_code == 400


def test_recovery_needs_a_second_person_is_announced_and_marked_in_the_log(
    service: KeyService, guarded: dict[str, Any], admin: Device
) -> None:
    dsl, child, record = guarded["dsl"], guarded["child"], guarded["record"]
    release(dsl, [(record.record_id, record.version)])
    with dsl.client() as http:
        ok(http.post(f"/v1/admin/devices/{dsl.device_id}/revoke"))
    with admin.client() as http:
        proposal = ok(http.post(f"/v1/admin/principals/{dsl.principal_id}/enrolment-codes"))
    approver = approver_for(admin)
    decided = approve(approver, proposal["proposal_id"])
    recovered = enrol(service.base_url, decided["enrolment_code"], device_name="new laptop")
    with recovered.client() as http:
        devices = {d["device_id"]: d for d in ok(http.get("/v1/me/devices"))}
        notices = ok(http.get("/v1/me/notifications"))
    assert devices[recovered.device_id]["origin"] == "recovered"
    assert devices[recovered.device_id]["approved_by"] == approver.principal_id
    assert {n["kind"] for n in notices} >= {"device.recovery_approved", "device.recovered"}
    _, results = release(recovered, [(record.record_id, record.version)])
    assert results[(record.record_id, record.version)]["status"] == "granted"
    with recovered.client() as http:
        log = ok(http.get(f"/v1/children/{child}/disclosures"))
    mine = [row for row in log if row["device_id"] == recovered.device_id]
    assert mine and all(row["device_origin"] == "recovered" for row in mine)
    first = [row for row in log if row["device_id"] == dsl.device_id]
    assert first and all(row["device_origin"] == "first" for row in first)


def test_a_first_code_for_someone_with_rights_but_no_device_waits_for_approval(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    newcomer = create_principal(admin, kind="staff", display_name="New DSL", roles=["dsl"])
    assign(admin, staff_id=newcomer, child_id=child, role="dsl")
    _code_proposed(admin, newcomer)


def test_a_first_code_is_stale_once_its_person_was_given_rights(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    newcomer = create_principal(admin, kind="staff", display_name="Kept Code", roles=["educator"])
    code = issue_code(admin, newcomer)
    with admin.client() as http:
        proposal = ok(
            http.post(
                "/v1/admin/assignments",
                json={"staff_id": newcomer, "child_id": child, "role": "educator"},
            )
        )
    # The approver sees whose codes the beneficiary holds before approving.
    assert proposal["beneficiary_vouched_by"] == [admin.principal_id]
    approve(approver_for(admin), proposal["proposal_id"])
    assert refused_enrolment(service, code).status_code == 400


def _newcomer_with_pending_assignment(admin: Device) -> tuple[str, dict[str, Any]]:
    """A staff principal with no device and no code, and an assignment proposed for them."""
    child = create_child(admin)
    newcomer = create_principal(
        admin, kind="staff", display_name="Clean Looking", roles=["educator"]
    )
    proposal_id = _propose_assignment(admin, staff_id=newcomer, child_id=child, role="educator")
    with admin.client() as http:
        proposal = ok(http.get(f"/v1/proposals/{proposal_id}"))
    assert proposal["beneficiary_vouched_by"] == []
    return newcomer, proposal


def test_race_no_first_code_from_an_admin_alone_while_rights_are_proposed(
    service: KeyService, admin: Device
) -> None:
    # The approver looked: nobody holds the newcomer's codes. The admin must not be able to
    # take a first code now, enrol a device of their own, and have the approval land on it.
    newcomer, _ = _newcomer_with_pending_assignment(admin)
    _code_proposed(admin, newcomer)


def test_race_an_approval_names_the_codes_it_saw_and_is_refused_if_they_changed(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    newcomer, proposal = _newcomer_with_pending_assignment(admin)
    approver = approver_for(admin)
    # Between the look and the approval, a code the admin saw appears for the newcomer (as
    # one issued in the same instant as the look would; written here directly).
    with service_db.begin() as connection:
        connection.execute(
            insert(enrolment_codes).values(
                code_hash="ab" * 32,
                principal_id=newcomer,
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                issued_by=admin.principal_id,
                purpose="first",
            )
        )
    with approver.client() as http:
        stale = http.post(
            f"/v1/proposals/{proposal['proposal_id']}/approve",
            json={"beneficiary_vouched_by": proposal["beneficiary_vouched_by"]},
        )
        assert stale.status_code == 409, stale.text
        assert "look again" in stale.json()["detail"]
        assert ok(http.get(f"/v1/proposals/{proposal['proposal_id']}"))["state"] == "pending"
        fresh = ok(http.get(f"/v1/proposals/{proposal['proposal_id']}"))
        done = ok(
            http.post(
                f"/v1/proposals/{proposal['proposal_id']}/approve",
                json={"beneficiary_vouched_by": fresh["beneficiary_vouched_by"]},
            )
        )
    assert done["state"] == "approved"


def test_an_admin_gets_no_second_first_code_beside_one_issued_at_the_host(
    service: KeyService, admin: Device
) -> None:
    manager = create_principal(admin, kind="staff", display_name="Manager", roles=["manager"])
    host_code(service, manager)
    with admin.client() as http:
        refused = http.post(f"/v1/admin/principals/{manager}/enrolment-codes")
    assert refused.status_code == 409, refused.text
    assert "already waiting" in refused.json()["detail"]


def test_the_host_lists_pending_proposals_with_who_saw_the_beneficiarys_codes(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    stand_in = admin_enrols(service, admin, kind="staff", roles=["educator"])
    proposal_id = _propose_assignment(
        admin, staff_id=stand_in.principal_id, child_id=child, role="educator"
    )
    listed = run_keyservice_command(service.env, "proposals", "list").stdout
    (line,) = [line for line in listed.splitlines() if line.startswith(proposal_id)]
    assert f"codes_seen_by={admin.principal_id}" in line
    assert f"for={stand_in.principal_id}" in line
