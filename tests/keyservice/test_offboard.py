"""Offboarding a member of staff who leaves (issue 15, part 5): one transaction ends their
assignments, devices, open codes and pending proposals, revokes them, and writes one audit
entry listing what ended; their next request of any kind is refused. Both databases.

Refusals first: each changes nothing and is audited.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.keyservice.conftest import database, last_audit_entry
from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    approver_for,
    assign,
    bootstrap_admin,
    create_child,
    create_principal,
    enrol,
    ok,
    own_code,
    proposed_and_approved,
    put_record,
    refused_enrolment,
)
from tests.servers import KeyService, KeyServiceFactory

pytestmark = pytest.mark.integration

ACTION = "principal.offboard"


def _offboard(
    caller: Device, principal_id: str, *, reason: str = "left the setting", dry_run: bool = False
) -> httpx.Response:
    with caller.client() as http:
        return http.post(
            f"/v1/admin/principals/{principal_id}/offboard",
            json={"reason": reason, "dry_run": dry_run},
        )


def _entries(engine: Engine, action: str, who: str) -> list[tuple[str, dict[str, Any]]]:
    """Every audit entry for ``action`` about the principal ``who``, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT outcome, detail FROM audit_entries WHERE action = :a ORDER BY seq"),
            {"a": action},
        ).all()
    found = [(row.outcome, json.loads(row.detail)) for row in rows]
    return [(outcome, detail) for outcome, detail in found if detail["principal_id"] == who]


def _still_active(device: Device) -> None:
    with device.client() as http:
        assert ok(http.get("/v1/me"))["principal_id"] == device.principal_id


def _refused_and_audited(
    service_db: Engine, caller: Device, principal_id: str, *, status: int, reason: str
) -> str:
    response = _offboard(caller, principal_id)
    assert response.status_code == status, response.text
    outcome, detail = last_audit_entry(service_db, principal_id=caller.principal_id, action=ACTION)
    assert outcome == "deny"
    assert detail["principal_id"] == principal_id and detail["reason"] == reason
    return str(response.json()["detail"])


def test_offboarding_oneself_is_refused(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    other_admin = approver_for(admin)  # so that "self", not "last admin", is the reason
    message = _refused_and_audited(service_db, admin, admin.principal_id, status=403, reason="self")
    assert "another admin" in message
    _still_active(admin)
    _still_active(other_admin)


def test_offboarding_the_last_admin_is_refused(
    keyservice_factory: KeyServiceFactory,
) -> None:
    alone = keyservice_factory(flavour="embedded")
    sole_admin = bootstrap_admin(alone)
    engine = database(alone)
    try:
        message = _refused_and_audited(
            engine, sole_admin, sole_admin.principal_id, status=409, reason="last_admin"
        )
        assert "add another admin first" in message
        _still_active(sole_admin)
    finally:
        engine.dispose()


def test_offboarding_an_unknown_person_is_a_404(admin: Device, service_db: Engine) -> None:
    nobody = "0" * 32
    _refused_and_audited(service_db, admin, nobody, status=404, reason="unknown")


def test_offboarding_needs_the_admin_role(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    manager = admin_enrols(service, admin, kind="staff", roles=["manager"])
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    response = _offboard(manager, educator.principal_id)
    assert response.status_code == 403, response.text
    outcome, _ = last_audit_entry(
        service_db, principal_id=manager.principal_id, action="admin.refused"
    )
    assert outcome == "deny"
    assert not _entries(service_db, ACTION, educator.principal_id)
    _still_active(educator)


def test_a_guardian_is_not_offboarded_but_told_to_revoke(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    guardian = admin_enrols(service, admin, kind="guardian")
    message = _refused_and_audited(
        service_db, admin, guardian.principal_id, status=409, reason="not_staff"
    )
    assert "revoke principal" in message
    _still_active(guardian)


def test_a_dry_run_says_what_would_end_and_changes_nothing(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    leaver = admin_enrols(service, admin, kind="staff", roles=["educator"])
    child = create_child(admin)
    assignment = assign(admin, staff_id=leaver.principal_id, child_id=child, role="educator")
    code = own_code(leaver)

    preview = ok(_offboard(admin, leaver.principal_id, dry_run=True))

    assert preview["dry_run"] is True
    assert preview["assignments_ended"] == [assignment]
    assert preview["devices_revoked"] == [leaver.device_id]
    assert preview["codes_voided"] == 1
    assert not _entries(service_db, ACTION, leaver.principal_id)
    _still_active(leaver)
    with service_db.connect() as connection:
        valid_to = connection.execute(
            text("SELECT valid_to FROM assignments WHERE assignment_id = :a"), {"a": assignment}
        ).scalar_one()
    assert valid_to is None
    # The code still enrols: nothing was voided.
    second = enrol(service.base_url, code)
    _still_active(second)


def test_a_leaver_is_offboarded_in_one_step(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    leaver = admin_enrols(service, admin, kind="staff", roles=["educator"])
    phone = enrol(service.base_url, own_code(leaver), device_name="phone")
    open_code = own_code(leaver)
    child, other_child = create_child(admin), create_child(admin)
    current = assign(admin, staff_id=leaver.principal_id, child_id=child, role="educator")
    starts_next_month = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    future = proposed_and_approved(
        admin,
        "/v1/admin/assignments",
        {
            "staff_id": leaver.principal_id,
            "child_id": other_child,
            "role": "educator",
            "valid_from": starts_next_month,
        },
    )
    with admin.client() as http:
        pending = ok(
            http.post(
                "/v1/admin/assignments",
                json={"staff_id": leaver.principal_id, "child_id": other_child, "role": "dsl"},
            )
        )["proposal_id"]
    record = put_record(leaver, child_ids=[child])
    with leaver.client() as http:
        ok(http.get("/v1/me"))

    done = ok(_offboard(admin, leaver.principal_id, reason="left on 5 December"))

    assert done["dry_run"] is False
    assert done["assignments_ended"] == sorted([current, future])
    assert done["devices_revoked"] == sorted([leaver.device_id, phone.device_id])
    assert done["codes_voided"] == 1
    assert done["proposals_cancelled"] == [pending]
    assert done["announced_to"] == []  # an educator: nobody needs telling
    # Their next request of any kind, from either device, is refused.
    for device in (leaver, phone):
        with device.client() as http:
            assert http.get("/v1/me").status_code == 401
            assert http.post("/v1/me/enrolment-codes").status_code == 401
            released = http.post(
                "/v1/keys/release",
                json={"items": [{"record_id": record.record_id, "version": record.version}]},
            )
            assert released.status_code == 401
    assert refused_enrolment(service, open_code).status_code == 400
    with service_db.connect() as connection:
        ends = connection.execute(
            text("SELECT valid_to FROM assignments WHERE staff_id = :s"),
            {"s": leaver.principal_id},
        ).scalars()
        assert all(end is not None for end in ends)
        still_open = connection.execute(
            text("SELECT count(*) FROM assignments WHERE staff_id = :s AND valid_to > :now"),
            {"s": leaver.principal_id, "now": datetime.now(UTC)},
        ).scalar_one()
        assert still_open == 0
        live_devices = connection.execute(
            text("SELECT count(*) FROM devices WHERE principal_id = :s AND revoked_at IS NULL"),
            {"s": leaver.principal_id},
        ).scalar_one()
        assert live_devices == 0
        usable_codes = connection.execute(
            text(
                "SELECT count(*) FROM enrolment_codes WHERE principal_id = :s "
                "AND used_at IS NULL AND expires_at > :now"
            ),
            {"s": leaver.principal_id, "now": datetime.now(UTC)},
        ).scalar_one()
        assert usable_codes == 0
        proposal_state = connection.execute(
            text("SELECT state FROM proposals WHERE proposal_id = :p"), {"p": pending}
        ).scalar_one()
        assert proposal_state == "cancelled"
    # One audit entry lists everything that ended.
    entries = _entries(service_db, ACTION, leaver.principal_id)
    assert len(entries) == 1
    outcome, detail = entries[0]
    assert outcome == "allow"
    assert detail["assignments_ended"] == done["assignments_ended"]
    assert detail["devices_revoked"] == done["devices_revoked"]
    assert detail["proposals_cancelled"] == [pending]
    assert detail["counts"] == {"assignments": 2, "devices": 2, "codes": 1, "proposals": 1}
    assert detail["reason"] == "left on 5 December"
    # Done once: offboarding them again finds nobody.
    assert _offboard(admin, leaver.principal_id).status_code == 404


def test_offboarding_a_dsl_is_announced_to_the_other_admins_and_leads(
    service: KeyService, admin: Device
) -> None:
    other_admin = approver_for(admin)
    dsl = admin_enrols(service, admin, kind="staff", roles=["dsl"])
    educator = create_principal(admin, kind="staff", roles=["educator"])

    done = ok(_offboard(admin, dsl.principal_id))

    assert other_admin.principal_id in done["announced_to"]
    assert admin.principal_id not in done["announced_to"]
    assert educator not in done["announced_to"]
    with other_admin.client() as http:
        notices = ok(http.get("/v1/me/notifications"))
    told = [n for n in notices if n["kind"] == "principal.offboarded"]
    assert any(
        n["detail"]["principal_id"] == dsl.principal_id and n["detail"]["by"] == admin.principal_id
        for n in told
    )
