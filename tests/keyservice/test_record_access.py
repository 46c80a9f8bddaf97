"""Amending and deleting records: the policy comes first, and every refusal is one 404."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine

from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    Room,
    admin_enrols,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration

MISSING = "ef" * 16


@dataclass(frozen=True)
class Unassigned:
    """A DSL and a manager assigned to no child: their roles alone give them no records."""

    dsl: Device
    manager: Device


@pytest.fixture
def unassigned(service: KeyService, admin: Device) -> Unassigned:
    return Unassigned(
        dsl=admin_enrols(service, admin, kind="staff", roles=["dsl"]),
        manager=admin_enrols(service, admin, kind="staff", roles=["manager"]),
    )


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


def test_amend_does_not_reveal_whether_a_record_exists_or_its_category(
    room: Room, unassigned: Unassigned
) -> None:
    note = put_record(room.dsl, child_ids=[room.child], category="safeguarding")
    for outsider in (room.guardian, room.educator, unassigned.dsl):
        answers = [
            _amend(outsider, note.record_id, child=room.child, category="observation"),
            _amend(outsider, note.record_id, child=room.child, category="safeguarding"),
            _amend(outsider, MISSING, child=room.child, category="safeguarding"),
        ]
        assert {(a.status_code, a.json()["detail"]) for a in answers} == {
            (answers[0].status_code, answers[0].json()["detail"])
        }
        assert answers[0].status_code == 404


def test_amend_with_different_attributes_is_refused_for_an_entitled_caller(room: Room) -> None:
    note = put_record(room.dsl, child_ids=[room.child], category="safeguarding")
    wrong = _amend(room.dsl, note.record_id, child=room.child, category="observation")
    assert wrong.status_code == 404
    right = _amend(room.dsl, note.record_id, child=room.child, category="safeguarding")
    assert right.status_code == 201


def test_delete_needs_the_right_to_read_the_record(
    room: Room, unassigned: Unassigned, service_db: Engine
) -> None:
    note = put_record(room.dsl, child_ids=[room.child], category="safeguarding")
    refused = []
    for caller in (unassigned.dsl, unassigned.manager, room.educator):
        with caller.client() as http:
            refused.append(http.delete(f"/v1/records/{note.record_id}"))
            missing = http.delete(f"/v1/records/{MISSING}")
        assert (refused[-1].status_code, refused[-1].json()) == (404, missing.json())
        outcome, _ = last_audit_entry(
            service_db, principal_id=caller.principal_id, action="record.delete"
        )
        assert outcome == "deny"
    _, results = release(room.dsl, [(note.record_id, 1)])
    assert results[(note.record_id, 1)]["status"] == "granted"


def test_an_admin_cannot_delete_records(room: Room, admin: Device) -> None:
    record = put_record(room.educator, child_ids=[room.child])
    with admin.client() as http:
        assert http.delete(f"/v1/records/{record.record_id}").status_code == 404
    _, results = release(room.educator, [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "granted"


def test_a_reader_without_the_manager_or_dsl_role_cannot_delete(room: Room) -> None:
    record = put_record(room.educator, child_ids=[room.child])
    for reader in (room.educator, room.guardian):
        with reader.client() as http:
            assert http.delete(f"/v1/records/{record.record_id}").status_code == 404


def test_an_assigned_dsl_deletes(room: Room) -> None:
    record = put_record(room.educator, child_ids=[room.child])
    with room.dsl.client() as http:
        assert http.delete(f"/v1/records/{record.record_id}").status_code == 204
        assert http.delete(f"/v1/records/{record.record_id}").status_code == 404
