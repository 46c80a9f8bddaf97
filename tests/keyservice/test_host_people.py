"""The host's people commands cannot be steered into giving an admin's stand-in what the host
would give a real person (issue 12, finding 1, review).

Before this, ``carevault-keyservice enrolment-code`` gave a "recovered" code to someone who
already had a device, leaving the device an admin enrolled with the person's first code in
place beside the real person's; the host's ``proposals approve`` applied an assignment for an
account whose only device an admin had vouched for, as the admin asked.
"""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    create_child,
    enrol,
    ok,
    own_code,
)
from tests.servers import KeyService, run_keyservice_command

pytestmark = pytest.mark.integration

_CODE = re.compile(r"expires [^)]*\): (\S+)")


def _host(service: KeyService, *args: str) -> tuple[int, str]:
    done = run_keyservice_command(service.env, *args, check=False)
    return done.returncode, done.stdout + done.stderr


def _code_in(output: str) -> str:
    found = _CODE.search(output)
    assert found is not None, output
    return found.group(1)


def test_the_host_gives_no_code_to_someone_with_a_device_and_says_who_vouched_for_it(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    # The admin created Mo, took Mo's first code and enrolled a device of their own with it.
    mo = admin_enrols(service, admin, kind="staff", roles=["manager"])
    status, said = _host(service, "enrolment-code", mo.principal_id)
    assert status == 1, said
    assert mo.device_id in said and admin.principal_id in said
    assert "--recover" in said
    with service_db.connect() as connection:
        unused = connection.execute(
            text(
                "SELECT count(*) FROM enrolment_codes WHERE principal_id = :p AND used_at IS NULL"
            ),
            {"p": mo.principal_id},
        ).scalar_one()
    assert unused == 0


def test_a_recovery_at_the_host_voids_every_other_code_for_the_person(
    service: KeyService, admin: Device
) -> None:
    mo = admin_enrols(service, admin, kind="staff", roles=["manager"])
    spare = own_code(mo)
    status, said = _host(service, "enrolment-code", mo.principal_id, "--recover")
    assert status == 0, said
    recovered = enrol(service.base_url, _code_in(said))
    with pytest.raises(httpx.HTTPStatusError) as refused:
        enrol(service.base_url, spare)
    assert refused.value.response.status_code == 400
    with recovered.client() as http:
        listed = ok(http.get("/v1/me/devices"))
    origins = {d["device_id"]: d["origin"] for d in listed}
    assert origins[recovered.device_id] == "recovered"
    assert mo.device_id in origins


def test_a_recovery_at_the_host_can_revoke_the_devices_it_replaces(
    service: KeyService, admin: Device
) -> None:
    mo = admin_enrols(service, admin, kind="staff", roles=["manager"])
    status, said = _host(
        service, "enrolment-code", mo.principal_id, "--recover", "--revoke-devices"
    )
    assert status == 0, said
    assert mo.device_id in said
    with mo.client() as http:
        assert http.get("/v1/me/devices").status_code == 401
    recovered = enrol(service.base_url, _code_in(said))
    with recovered.client() as http:
        listed = ok(http.get("/v1/me/devices"))
    assert [d["device_id"] for d in listed if d["revoked_at"] is None] == [recovered.device_id]


def test_the_host_approves_no_change_for_someone_whose_codes_the_proposer_saw_without_force(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    stand_in = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with admin.client() as http:
        proposal = http.post(
            "/v1/admin/assignments",
            json={"staff_id": stand_in.principal_id, "child_id": child, "role": "educator"},
        ).json()["proposal_id"]
    status, said = _host(service, "proposals", "approve", proposal)
    assert status == 1, said
    assert admin.principal_id in said and "--force" in said
    with admin.client() as http:
        assert ok(http.get(f"/v1/proposals/{proposal}"))["state"] == "pending"
    status, said = _host(service, "proposals", "approve", proposal, "--force")
    assert status == 0, said
    with admin.client() as http:
        assert ok(http.get(f"/v1/proposals/{proposal}"))["state"] == "approved"


def test_a_new_bootstrap_code_for_an_admin_with_devices_is_a_recovery_and_announced(
    service: KeyService, admin: Device
) -> None:
    # Before this it was a plain first code: the device it enrolled looked like the admin's
    # own, and nobody was told.
    status, said = _host(service, "bootstrap", "--force-new-code")
    assert status == 0, said
    again = enrol(service.base_url, _code_in(said))
    with again.client() as http:
        listed = ok(http.get("/v1/me/devices"))
        told = ok(http.get("/v1/me/notifications"))
    assert {d["device_id"]: d["origin"] for d in listed}[again.device_id] == "recovered"
    assert any(n["kind"] == "device.recovery_approved" for n in told)
