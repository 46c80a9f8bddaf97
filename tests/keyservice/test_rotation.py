"""Key rotation rewraps rows and never touches blobs; releases keep working. Both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    assign,
    assigned_staff,
    create_child,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService, run_keyservice_command

pytestmark = pytest.mark.integration


def test_child_key_rotation_rewraps_and_release_still_works(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    educator, child = assigned_staff(service, admin)
    record = put_record(educator, child_ids=[child])
    with admin.client() as http:
        rotated = ok(http.post(f"/v1/admin/children/{child}/rotate-key"))
    assert rotated == {"child_id": child, "version": 2, "rewrapped": 1}
    with service_db.connect() as connection:
        states = dict(
            connection.execute(
                text("SELECT version, state FROM child_keys WHERE child_id = :c"), {"c": child}
            ).all()
        )
        wrapped_under = connection.execute(
            text("SELECT child_key_version FROM wrapped_record_keys WHERE record_id = :r"),
            {"r": record.record_id},
        ).scalar_one()
    assert states == {1: "decrypt-only", 2: "active"}
    assert wrapped_under == 2
    response, results = release(educator, [(record.record_id, 1)], include_urls=True)
    granted = results[(record.record_id, 1)]
    assert educator.open_key(response, granted) == record.record_key
    newer = put_record(educator, child_ids=[child])
    _, results = release(educator, [(newer.record_id, 1)])
    assert results[(newer.record_id, 1)]["status"] == "granted"


def test_rotation_is_admin_only(service: KeyService, admin: Device) -> None:
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        assert http.post(f"/v1/admin/children/{child}/rotate-key").status_code == 403


def test_root_rotation_rewraps_child_keys(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    educator, child = assigned_staff(service, admin)
    record = put_record(educator, child_ids=[child])
    with service_db.connect() as connection:
        before = connection.execute(
            text("SELECT wrapped FROM child_keys WHERE child_id = :c"), {"c": child}
        ).scalar_one()
    output = run_keyservice_command(service.env, "rotate-root").stdout
    assert "root key version" in output
    with service_db.connect() as connection:
        after = connection.execute(
            text("SELECT wrapped FROM child_keys WHERE child_id = :c"), {"c": child}
        ).scalar_one()
    assert bytes(after) != bytes(before)
    # The running service picks the new root version up from the shared key file.
    later_child = create_child(admin)
    assign(admin, staff_id=educator.principal_id, child_id=later_child, role="educator")
    later = put_record(educator, child_ids=[later_child])
    _, results = release(educator, [(record.record_id, 1), (later.record_id, 1)])
    assert {r["status"] for r in results.values()} == {"granted"}
