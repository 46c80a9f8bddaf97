"""Legal holds and crypto-shredding (issue 15, part 6; decision 0019), on both databases.

Refusals first, each clear, changing nothing, audited: a request by someone who is not a lead
of the child (an admin included), approving one's own request, an admin approving, a request
during a legal hold or with a live share, a cancelled shred, and shredding twice. Then a
shred carried out: its keys gone (a copy of the blob taken before cannot be opened with
anything the service holds), its blob gone from the store, release the same answer as for an
unknown record, a certificate that verifies offline, and an audit chain that still verifies.

The waiting period is 30 days; a test moves a shred's ``not_before`` into the past in the
database and the next request that touches shreds carries it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text, update

from keyservice.db.tables import child_keys, shred_requests, wrapped_record_keys
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    StoredRecord,
    add_guardian,
    admin_enrols,
    assign,
    create_child,
    create_principal,
    enrol,
    guardian_consent,
    host_code,
    ok,
    put_record,
    release,
    unb64,
    verify_audit,
)
from tests.servers import KeyService
from vault.shred import read_certificate

pytestmark = pytest.mark.integration

MISSING = "ef" * 16


@dataclass(frozen=True)
class Setting:
    """A child with a DSL and a manager (the two leads, independent of each other), an
    educator, and a record."""

    child: str
    dsl: Device
    manager: Device
    educator: Device
    record: StoredRecord


@pytest.fixture
def setting(service: KeyService, admin: Device) -> Setting:
    child = create_child(admin)
    dsl = admin_enrols(service, admin, kind="staff", roles=["dsl"])
    # Enrolled with a code from the host: the admin never saw it, so the manager is
    # independent of the DSL (whose code the admin did see) and may approve their requests.
    manager_id = create_principal(admin, kind="staff", roles=["manager"])
    manager = enrol(service.base_url, host_code(service, manager_id))
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    for device, role in ((dsl, "dsl"), (manager, "manager"), (educator, "educator")):
        assign(admin, staff_id=device.principal_id, child_id=child, role=role)
    return Setting(child, dsl, manager, educator, put_record(dsl, child_ids=[child]))


def _post(device: Device, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    with device.client() as http:
        return http.post(path, json=body or {})


def _request(device: Device, **body: Any) -> httpx.Response:
    return _post(device, "/v1/shreds", {"reason": "retention over", **body})


def _shred_states(engine: Engine, **where: str) -> list[str]:
    column, value = next(iter(where.items()))
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(shred_requests.c.state).where(shred_requests.c[column] == value)
            ).scalars()
        )


def _refused(
    response: httpx.Response,
    engine: Engine,
    device: Device,
    *,
    status: int,
    action: str,
    reason: str,
) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    outcome, detail = last_audit_entry(engine, principal_id=device.principal_id, action=action)
    assert (outcome, detail["reason"]) == ("deny", reason)
    return str(response.json()["detail"])


def _due_now(engine: Engine, shred_id: str) -> None:
    """The waiting period is over (moved into the past, as 30 days passing would)."""
    with engine.begin() as connection:
        connection.execute(
            update(shred_requests)
            .where(shred_requests.c.shred_id == shred_id)
            .values(not_before=datetime(2000, 1, 1, tzinfo=UTC))
        )


def _wraps(engine: Engine, record_id: str) -> int:
    with engine.connect() as connection:
        count: int = connection.execute(
            select(func.count())
            .select_from(wrapped_record_keys)
            .where(wrapped_record_keys.c.record_id == record_id)
        ).scalar_one()
    return count


def _granted(device: Device, record: StoredRecord) -> bool:
    _, results = release(device, [(record.record_id, record.version)])
    return bool(results[(record.record_id, record.version)]["status"] == "granted")


def _approved(setting: Setting, **target: str) -> str:
    shred_id = str(ok(_request(setting.dsl, **target))["shred_id"])
    approved = ok(_post(setting.manager, f"/v1/shreds/{shred_id}/approve"))
    assert approved["state"] == "approved" and approved["not_before"] is not None
    return shred_id


# --- refusals -----------------------------------------------------------------------------


def test_only_a_lead_of_the_child_requests_and_an_admin_alone_never(
    setting: Setting, admin: Device, service_db: Engine
) -> None:
    # The educator may read the record but not shred it: the same 404 as for no record.
    refused = _request(setting.educator, record_id=setting.record.record_id)
    message = _refused(
        refused,
        service_db,
        setting.educator,
        status=404,
        action="shred.request",
        reason="no_standing",
    )
    assert message == _request(setting.dsl, record_id=MISSING).json()["detail"]
    refused = _request(admin, child_id=setting.child)
    message = _refused(
        refused, service_db, admin, status=403, action="shred.request", reason="admin_alone"
    )
    assert "admin alone may not" in message
    assert _shred_states(service_db, child_id=setting.child) == []
    assert _granted(setting.dsl, setting.record)


def test_approving_ones_own_request_is_refused(setting: Setting, service_db: Engine) -> None:
    shred_id = ok(_request(setting.dsl, record_id=setting.record.record_id))["shred_id"]
    refused = _post(setting.dsl, f"/v1/shreds/{shred_id}/approve")
    message = _refused(
        refused, service_db, setting.dsl, status=403, action="shred.approve", reason="own_request"
    )
    assert "second manager or DSL" in message
    assert _shred_states(service_db, shred_id=shred_id) == ["pending"]


def test_an_admin_cannot_approve_nor_cancel(
    setting: Setting, admin: Device, service_db: Engine
) -> None:
    shred_id = ok(_request(setting.dsl, record_id=setting.record.record_id))["shred_id"]
    refused = _post(admin, f"/v1/shreds/{shred_id}/approve")
    _refused(refused, service_db, admin, status=403, action="shred.approve", reason="admin_alone")
    refused = _post(admin, f"/v1/shreds/{shred_id}/cancel", {"reason": "no"})
    _refused(refused, service_db, admin, status=403, action="shred.cancel", reason="admin_alone")
    # Nor does the educator, who is told nothing about it.
    refused = _post(setting.educator, f"/v1/shreds/{shred_id}/approve")
    _refused(
        refused, service_db, setting.educator, status=404, action="shred.approve", reason="unknown"
    )
    assert _shred_states(service_db, shred_id=shred_id) == ["pending"]


def test_a_shred_without_approval_is_never_carried_out(
    setting: Setting, service_db: Engine
) -> None:
    shred_id = ok(_request(setting.dsl, record_id=setting.record.record_id))["shred_id"]
    with setting.dsl.client() as http:
        assert ok(http.get(f"/v1/shreds/{shred_id}"))["state"] == "pending"
        refused = http.get(f"/v1/shreds/{shred_id}/certificate")
    assert refused.status_code == 409
    assert _wraps(service_db, setting.record.record_id) == 1
    assert _granted(setting.dsl, setting.record)


def test_a_legal_hold_refuses_a_shred_and_stops_one_that_falls_due(
    setting: Setting, service_db: Engine
) -> None:
    hold = ok(_post(setting.dsl, f"/v1/children/{setting.child}/holds", {"reason": "court case"}))
    outcome, detail = last_audit_entry(
        service_db, principal_id=setting.dsl.principal_id, action="legal_hold.set"
    )
    assert (outcome, detail["hold_id"]) == ("allow", hold["hold_id"])
    for body in ({"record_id": setting.record.record_id}, {"child_id": setting.child}):
        message = _refused(
            _request(setting.manager, **body),
            service_db,
            setting.manager,
            status=409,
            action="shred.request",
            reason="legal_hold",
        )
        assert "legal hold" in message
    assert _shred_states(service_db, child_id=setting.child) == []
    # An educator neither sets nor lifts a hold.
    refused = _post(setting.educator, f"/v1/holds/{hold['hold_id']}/lift", {"reason": "x"})
    _refused(
        refused,
        service_db,
        setting.educator,
        status=404,
        action="legal_hold.lift",
        reason="no_standing",
    )
    ok(_post(setting.manager, f"/v1/holds/{hold['hold_id']}/lift", {"reason": "case closed"}))

    # Approved, then a hold during the wait: when it falls due it is stopped, not carried out.
    shred_id = _approved(setting, record_id=setting.record.record_id)
    ok(_post(setting.dsl, f"/v1/children/{setting.child}/holds", {"reason": "new case"}))
    _due_now(service_db, shred_id)
    with setting.dsl.client() as http:
        stopped = ok(http.get(f"/v1/shreds/{shred_id}"))
    assert (stopped["state"], stopped["cancel_reason"]) == ("cancelled", "legal_hold")
    assert _wraps(service_db, setting.record.record_id) == 1
    assert _granted(setting.dsl, setting.record)


def test_a_live_share_refuses_a_shred(
    service: KeyService, admin: Device, setting: Setting, service_db: Engine
) -> None:
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=setting.child)
    agency = admin_enrols(service, admin, kind="external", organisation="County")
    consent = guardian_consent(
        guardian,
        child_id=setting.child,
        recipient_id=agency.principal_id,
        categories=["observation"],
        purpose="referral",
    )
    share = ok(
        _post(
            setting.dsl,
            "/v1/shares",
            {
                "recipient_id": agency.principal_id,
                "basis": "consent",
                "basis_id": consent,
                "purpose": "referral",
                "record_ids": [setting.record.record_id],
            },
        )
    )
    for body in ({"record_id": setting.record.record_id}, {"child_id": setting.child}):
        message = _refused(
            _request(setting.manager, **body),
            service_db,
            setting.manager,
            status=409,
            action="shred.request",
            reason="live_share",
        )
        assert "revoke the share first" in message
    assert _shred_states(service_db, child_id=setting.child) == []
    ok(_post(setting.dsl, f"/v1/shares/{share['share_id']}/revoke", {"reason": "done"}))
    assert _request(setting.manager, record_id=setting.record.record_id).status_code == 201


def test_a_cancelled_shred_is_never_carried_out(setting: Setting, service_db: Engine) -> None:
    shred_id = _approved(setting, record_id=setting.record.record_id)
    cancelled = ok(_post(setting.dsl, f"/v1/shreds/{shred_id}/cancel", {"reason": "mistake"}))
    assert cancelled["state"] == "cancelled"
    _due_now(service_db, shred_id)
    with setting.dsl.client() as http:
        assert ok(http.get(f"/v1/shreds/{shred_id}"))["state"] == "cancelled"
    refused = _post(setting.manager, f"/v1/shreds/{shred_id}/approve")
    _refused(
        refused, service_db, setting.manager, status=409, action="shred.approve", reason="cancelled"
    )
    assert _wraps(service_db, setting.record.record_id) == 1
    assert _granted(setting.dsl, setting.record)


def test_a_second_request_for_the_same_thing_is_refused(
    setting: Setting, service_db: Engine
) -> None:
    ok(_request(setting.dsl, record_id=setting.record.record_id))
    refused = _request(setting.manager, record_id=setting.record.record_id)
    _refused(
        refused,
        service_db,
        setting.manager,
        status=409,
        action="shred.request",
        reason="already_requested",
    )
    assert _shred_states(service_db, record_id=setting.record.record_id) == ["pending"]


# --- carried out --------------------------------------------------------------------------


def _service_key(device: Device) -> bytes:
    with device.client() as http:
        return unb64(ok(http.get("/v1/service/signing-key"))["public_key"])


def test_a_record_shred_destroys_its_keys_and_blob_and_certifies_it(
    service: KeyService, setting: Setting, service_db: Engine
) -> None:
    other = put_record(setting.dsl, child_ids=[setting.child])
    _, before = release(setting.dsl, [(setting.record.record_id, 1)], include_urls=True)
    url = before[(setting.record.record_id, 1)]["download_url"]
    copy = httpx.get(url, timeout=30.0).content  # a copy of the blob, as a backup would hold
    assert copy == setting.record.ciphertext
    shred_id = _approved(setting, record_id=setting.record.record_id)
    # Still there during the wait.
    assert _granted(setting.dsl, setting.record)
    _due_now(service_db, shred_id)
    with setting.manager.client() as http:
        done = ok(http.get(f"/v1/shreds/{shred_id}"))
        certificate = ok(http.get(f"/v1/shreds/{shred_id}/certificate"))
    assert done["state"] == "done" and done["done_at"] is not None

    # Nothing the service holds opens the copy: the record's wrapped keys are gone.
    assert _wraps(service_db, setting.record.record_id) == 0
    # Release: the same answer as for a record that never existed.
    response, results = release(setting.dsl, [(setting.record.record_id, 1), (MISSING, 1)])
    shapes = [{k: v for k, v in r.items() if k != "record_id"} for r in results.values()]
    assert shapes == [{"version": 1, "status": "denied", "code": "unavailable"}] * 2
    assert "sealed_key" not in response.text
    with setting.dsl.client() as http:
        gone = http.get(f"/v1/records/{setting.record.record_id}/versions")
        missing = http.get(f"/v1/records/{MISSING}/versions")
    assert (gone.status_code, gone.json()["detail"]) == (404, missing.json()["detail"])
    # The blob is gone from the store.
    assert httpx.get(url, timeout=30.0).status_code in (403, 404)
    # The child's other record is untouched.
    assert _granted(setting.dsl, other)

    # The certificate verifies offline with the key pinned from the service.
    pinned = _service_key(setting.dsl)
    read = read_certificate(
        pinned, unb64(certificate["statement"]), unb64(certificate["signature"])
    )
    assert (read.shred_id, read.target, read.record_id) == (
        shred_id,
        "record",
        setting.record.record_id,
    )
    assert read.records_shredded == (setting.record.record_id,)
    assert (read.requested_by, read.approved_by) == (
        setting.dsl.principal_id,
        setting.manager.principal_id,
    )
    assert read.wraps_destroyed == 1 and read.objects_deleted == 1
    tampered = unb64(certificate["statement"]).replace(b"retention over", b"retention 0ver")
    with pytest.raises(ValueError, match="does not verify"):
        read_certificate(pinned, tampered, unb64(certificate["signature"]))

    # Shredding it again: the same 404 as for any unknown record, audited, nothing changed.
    refused = _request(setting.manager, record_id=setting.record.record_id)
    _refused(
        refused, service_db, setting.manager, status=404, action="shred.request", reason="unknown"
    )
    with service_db.connect() as connection:
        entries = connection.execute(
            text("SELECT detail FROM audit_entries WHERE action = 'shred.done'")
        ).scalars()
        assert any(json.loads(detail)["shred_id"] == shred_id for detail in entries)
    verify_audit(service, exit_code=0)


def test_a_child_shred_destroys_the_childs_key_versions(
    setting: Setting, admin: Device, service_db: Engine
) -> None:
    sibling = create_child(admin)
    assign(admin, staff_id=setting.dsl.principal_id, child_id=sibling, role="dsl")
    group = put_record(setting.dsl, child_ids=[setting.child, sibling], category="photo")
    safeguarding = put_record(setting.dsl, child_ids=[setting.child], category="safeguarding")
    planned = _request(setting.dsl, child_id=setting.child, dry_run=True)
    assert (ok(planned)["shred_id"], ok(planned)["records"]) == (None, 2)
    assert _shred_states(service_db, child_id=setting.child) == []
    shred_id = _approved(setting, child_id=setting.child)
    _due_now(service_db, shred_id)
    with setting.manager.client() as http:
        certificate = ok(http.get(f"/v1/shreds/{shred_id}/certificate"))
    read = read_certificate(
        _service_key(setting.manager),
        unb64(certificate["statement"]),
        unb64(certificate["signature"]),
    )
    assert set(read.records_shredded) == {setting.record.record_id, safeguarding.record_id}
    assert read.child_key_versions_destroyed == (1,)
    with service_db.connect() as connection:
        keys = connection.execute(
            select(child_keys.c.state, child_keys.c.wrapped).where(
                child_keys.c.child_id == setting.child
            )
        ).all()
    assert [(row.state, row.wrapped) for row in keys] == [("destroyed", None)]
    for record in (setting.record, safeguarding):
        assert _wraps(service_db, record.record_id) == 0
    # The group photo stays for the sibling, whose own wrap still opens it.
    assert _wraps(service_db, group.record_id) == 1
    assert _granted(setting.dsl, group)
    # Twice: refused, clearly, audited.
    refused = _request(setting.dsl, child_id=setting.child)
    _refused(
        refused,
        service_db,
        setting.dsl,
        status=409,
        action="shred.request",
        reason="already_shredded",
    )


def test_a_group_record_goes_with_the_last_of_its_children_shredded(
    setting: Setting, admin: Device, service_db: Engine
) -> None:
    """Two children shredded one after the other: their group record stays for the second
    while it lives, and goes whole (row, keys, blob, in the certificate) with it."""
    sibling = create_child(admin)
    assign(admin, staff_id=setting.dsl.principal_id, child_id=sibling, role="dsl")
    assign(admin, staff_id=setting.manager.principal_id, child_id=sibling, role="manager")
    group = put_record(setting.dsl, child_ids=[setting.child, sibling], category="photo")
    first = _approved(setting, child_id=setting.child)
    _due_now(service_db, first)
    with setting.manager.client() as http:
        assert ok(http.get(f"/v1/shreds/{first}"))["state"] == "done"
    # Still the sibling's: their staff read it, and its blob is there.
    assert _wraps(service_db, group.record_id) == 1
    _, before = release(setting.dsl, [(group.record_id, 1)], include_urls=True)
    assert before[(group.record_id, 1)]["status"] == "granted"
    url = before[(group.record_id, 1)]["download_url"]
    assert httpx.get(url, timeout=30.0).content == group.ciphertext

    planned = ok(_request(setting.dsl, child_id=sibling, dry_run=True))
    assert planned["records"] == 1
    second = _approved(setting, child_id=sibling)
    _due_now(service_db, second)
    with setting.manager.client() as http:
        certificate = ok(http.get(f"/v1/shreds/{second}/certificate"))
    read = read_certificate(
        _service_key(setting.manager),
        unb64(certificate["statement"]),
        unb64(certificate["signature"]),
    )
    assert read.records_shredded == (group.record_id,)
    assert read.objects_deleted == 1
    assert _wraps(service_db, group.record_id) == 0
    with service_db.connect() as connection:
        deleted_at = connection.execute(
            text("SELECT deleted_at FROM records WHERE record_id = :r"), {"r": group.record_id}
        ).scalar_one()
        states = connection.execute(
            text("SELECT state FROM record_versions WHERE record_id = :r"),
            {"r": group.record_id},
        ).scalars()
        assert deleted_at is not None and set(states) == {"deleted"}
    assert httpx.get(url, timeout=30.0).status_code in (403, 404)
    _, after = release(setting.dsl, [(group.record_id, 1)])
    assert after[(group.record_id, 1)]["code"] == "unavailable"
