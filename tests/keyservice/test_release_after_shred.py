"""A group record after one of its children was shredded whole, on both databases.

Decision 0019 keeps a record of several children for the others when one of them is shredded
(decision 0002: the record key is wrapped under each child's key, so the others' wraps still
open it). The release rules then judge the record by its remaining children only: a child
whose shred was carried out no longer counts (docs/POLICY.md), so the other children's staff
and guardians read it again, while the record's attributes (the sealed key's associated data)
still name every child it was made with. The shredded child's guardian gets nothing, and a
record whose key was wrapped only under the shredded child's key is denied like any other
unavailable item, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete, select, update

from keyservice.db.tables import disclosures, shred_requests, wrapped_record_keys
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
    host_code,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Group:
    """Two children, ``shredded`` (to be shredded whole) and ``sibling``; a group photo of
    both made by their DSL; a key person and a parent of the sibling only; a parent of the
    shredded child only; and the shredded child's two leads, who shred it."""

    shredded: str
    sibling: str
    photo: StoredRecord
    key_person: Device
    sibling_parent: Device
    shredded_parent: Device
    dsl: Device
    manager: Device


@pytest.fixture
def group(service: KeyService, admin: Device) -> Group:
    shredded, sibling = create_child(admin), create_child(admin)
    dsl = admin_enrols(service, admin, kind="staff", roles=["dsl"])
    # Enrolled with a code from the host: independent of the DSL, so may approve the shred.
    manager_id = create_principal(admin, kind="staff", roles=["manager"])
    manager = enrol(service.base_url, host_code(service, manager_id))
    key_person = admin_enrols(service, admin, kind="staff", roles=["educator"])
    for child in (shredded, sibling):
        assign(admin, staff_id=dsl.principal_id, child_id=child, role="dsl")
    assign(admin, staff_id=manager.principal_id, child_id=shredded, role="manager")
    assign(admin, staff_id=key_person.principal_id, child_id=sibling, role="educator")
    sibling_parent = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=sibling_parent.principal_id, child_id=sibling)
    shredded_parent = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=shredded_parent.principal_id, child_id=shredded)
    photo = put_record(dsl, child_ids=[shredded, sibling], category="photo")
    return Group(
        shredded, sibling, photo, key_person, sibling_parent, shredded_parent, dsl, manager
    )


def _result(device: Device, record: StoredRecord) -> tuple[httpx.Response, dict[str, Any]]:
    response, results = release(device, [(record.record_id, record.version)])
    return response, results[(record.record_id, record.version)]


def _status(device: Device, record: StoredRecord) -> str:
    return str(_result(device, record)[1]["status"])


def _shred_child(group: Group, engine: Engine) -> None:
    """Request, approve, let the wait pass, and have the next shred route carry it out."""
    with group.dsl.client() as http:
        asked = ok(
            http.post("/v1/shreds", json={"reason": "retention over", "child_id": group.shredded})
        )
    shred_id = asked["shred_id"]
    with group.manager.client() as http:
        ok(http.post(f"/v1/shreds/{shred_id}/approve", json={}))
    with engine.begin() as connection:
        connection.execute(
            update(shred_requests)
            .where(shred_requests.c.shred_id == shred_id)
            .values(not_before=datetime(2000, 1, 1, tzinfo=UTC))
        )
    with group.manager.client() as http:
        assert ok(http.get(f"/v1/shreds/{shred_id}"))["state"] == "done"


def _disclosed_children(engine: Engine, device: Device, record_id: str) -> list[str]:
    with engine.connect() as connection:
        return sorted(
            connection.execute(
                select(disclosures.c.child_id).where(
                    disclosures.c.record_id == record_id,
                    disclosures.c.principal_id == device.principal_id,
                )
            ).scalars()
        )


def test_the_other_childs_staff_and_parent_read_a_group_record_after_a_child_shred(
    group: Group, service_db: Engine
) -> None:
    # Before: the photo needs rights for both children.
    assert _status(group.key_person, group.photo) == "denied"
    assert _status(group.sibling_parent, group.photo) == "denied"
    _shred_child(group, service_db)
    # After: the shredded child no longer counts.
    response, granted = _result(group.key_person, group.photo)
    assert granted["status"] == "granted"
    # The attributes, the sealed key's associated data, still name both children: the key
    # opens only with them, and it is the record's key.
    assert granted["attributes"]["child_ids"] == sorted([group.shredded, group.sibling])
    assert group.key_person.open_key(response, granted) == group.photo.record_key
    outcome, detail = last_audit_entry(
        service_db, principal_id=group.key_person.principal_id, action="keys.release"
    )
    assert (outcome, detail["items"]) == (
        "allow",
        [[group.photo.record_id, group.photo.version, "granted", "assignment"]],
    )
    # The disclosure log names the children whose rights released it, not the shredded one.
    assert _disclosed_children(service_db, group.key_person, group.photo.record_id) == [
        group.sibling
    ]
    assert _status(group.sibling_parent, group.photo) == "granted"
    # The shredded child's parent gets nothing, as for a record that does not exist.
    _, refused = _result(group.shredded_parent, group.photo)
    assert (refused["status"], refused["code"]) == ("denied", "unavailable")
    outcome, detail = last_audit_entry(
        service_db, principal_id=group.shredded_parent.principal_id, action="keys.release"
    )
    assert (outcome, detail["items"]) == (
        "deny",
        [[group.photo.record_id, group.photo.version, "denied", "none"]],
    )
    # Staff of both children read it as before.
    assert _status(group.dsl, group.photo) == "granted"


def test_a_group_record_whose_key_only_the_shredded_child_wrapped_is_denied(
    group: Group, service_db: Engine
) -> None:
    # Every record key is wrapped under each of its children's keys (decision 0002); a record
    # whose only wrap was the shredded child's (damaged, or from an older service) has no key
    # left after the shred: its release is denied, audited, and nothing fails.
    with service_db.begin() as connection:
        connection.execute(
            delete(wrapped_record_keys).where(
                wrapped_record_keys.c.record_id == group.photo.record_id,
                wrapped_record_keys.c.child_id == group.sibling,
            )
        )
    _shred_child(group, service_db)
    _, refused = _result(group.key_person, group.photo)
    assert (refused["status"], refused["code"]) == ("denied", "unavailable")
    outcome, detail = last_audit_entry(
        service_db, principal_id=group.key_person.principal_id, action="keys.release"
    )
    assert (outcome, detail["items"]) == (
        "deny",
        [[group.photo.record_id, group.photo.version, "denied", "none"]],
    )
    assert _disclosed_children(service_db, group.key_person, group.photo.record_id) == []
