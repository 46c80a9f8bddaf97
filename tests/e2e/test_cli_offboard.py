"""``carevault admin offboard`` against a real key service (issue 15, part 5): refusals first,
then a dry run that changes nothing, then a leaver whose next command is refused. The SDK's
``Client.offboard`` is what the CLI calls; the key service's own tests cover both databases
(tests/keyservice/test_offboard.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.output import EXIT_DENIED, EXIT_ERROR
from tests.e2e.cli import as_json, run_cli
from tests.e2e.world import World
from tests.keyservice.helpers import bootstrap_code
from vault.client import Client

pytestmark = pytest.mark.integration


def _enrolled(profile: Path, world: World, code: str) -> Path:
    status, said = run_cli(profile, "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, said
    return profile


@pytest.fixture(scope="module")
def world(embedded_world: World) -> World:
    return embedded_world


@pytest.fixture(scope="module")
def admin(embedded_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLI profile of the first admin (a new device of theirs)."""
    code = bootstrap_code(embedded_world.service, force_new_code=True)
    return _enrolled(tmp_path_factory.mktemp("admin"), embedded_world, code)


def _leaver(world: World, tmp_path: Path, name: str) -> Path:
    """A new educator with a CLI profile, assigned to Ava."""
    code = world.code_for(name, kind="staff", roles=("educator",))
    profile = _enrolled(tmp_path / name, world, code)
    world.assign(name, world.children["ava"])
    return profile


def test_offboarding_refusals_change_nothing(world: World, admin: Path, tmp_path: Path) -> None:
    me = str(as_json(admin, "whoami")["principal_id"])
    status, said = run_cli(admin, "admin", "offboard", me, "--reason", "testing")
    assert status == EXIT_DENIED and "you cannot offboard yourself" in said, said
    status, said = run_cli(admin, "admin", "offboard", "0" * 32, "--reason", "testing")
    assert status == EXIT_DENIED and "no active principal with this id" in said, said
    status, said = run_cli(admin, "admin", "offboard", world.ids["grace"], "--reason", "moved")
    assert status == EXIT_ERROR and "admin revoke principal" in said, said
    educator = _enrolled(
        tmp_path / "eve", world, world.code_for("eve", kind="staff", roles=("educator",))
    )
    status, said = run_cli(educator, "admin", "offboard", world.ids["amira"], "--reason", "x")
    assert status == EXIT_DENIED, said
    assert as_json(admin, "whoami")["principal_id"] == me
    assert world.people["amira"].whoami().principal_id == world.ids["amira"]
    assert world.people["grace"].whoami().principal_id == world.ids["grace"]


def test_a_leaver_is_offboarded_after_a_dry_run(world: World, admin: Path, tmp_path: Path) -> None:
    leaver = _leaver(world, tmp_path, "lee")
    lee = world.ids["lee"]

    preview = as_json(admin, "admin", "offboard", lee, "--reason", "left", "--dry-run")
    assert preview["dry_run"] is True
    assert len(preview["assignments_ended"]) == 1  # type: ignore[arg-type]
    assert len(preview["devices_revoked"]) == 1  # type: ignore[arg-type]
    status, said = run_cli(admin, "admin", "offboard", lee, "--reason", "left", "--dry-run")
    assert status == 0 and "Dry run: nothing changed." in said, said
    assert as_json(leaver, "whoami")["principal_id"] == lee

    status, said = run_cli(admin, "admin", "offboard", lee, "--reason", "left on Friday")
    assert status == 0, said
    assert f"Offboarded {lee}: their next request is refused." in said
    assert preview["assignments_ended"][0] in said  # type: ignore[index]

    status, said = run_cli(leaver, "whoami")
    assert status == EXIT_DENIED, said
    status, said = run_cli(admin, "admin", "offboard", lee, "--reason", "again")
    assert status == EXIT_DENIED, "a second offboarding finds nobody"


def test_the_sdk_offboards_and_reports_what_ended(world: World) -> None:
    code = world.code_for("max", kind="staff", roles=("manager",))
    manager, _ = Client.enrol(world.service.base_url, code, "max's laptop")
    try:
        assignment = world.assign("max", world.children["noah"], role="manager")
        done = world.admin.offboard(world.ids["max"], reason="retired")
        assert done.dry_run is False
        assert done.assignments_ended == (assignment,)
        assert done.devices_revoked == (manager.identity.device_id,)
        # A manager's leaving is announced: the second admin and the DSL are told.
        assert world.approver.whoami().principal_id in done.announced_to
        assert world.ids["dana"] in done.announced_to
        told = [n for n in world.approver.notifications() if n.kind == "principal.offboarded"]
        assert any(n.detail["principal_id"] == world.ids["max"] for n in told)
    finally:
        manager.close()
