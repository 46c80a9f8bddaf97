"""``carevault admin retention|shred|hold`` against a real key service (issue 15, part 6):
refusals first (an admin alone, one's own approval, a hold), then a dry run, a cancelled
shred, and one carried out whose certificate is saved and verified offline. The key service's
own tests cover both databases (tests/keyservice/test_shredding.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from clients.output import EXIT_DENIED
from keyservice.db.tables import shred_requests
from tests.e2e.cli import as_json, run_cli
from tests.e2e.world import World
from tests.keyservice.conftest import database
from tests.keyservice.helpers import bootstrap_code, host_code

pytestmark = pytest.mark.integration


def _enrolled(profile: Path, world: World, code: str) -> Path:
    status, said = run_cli(profile, "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, said
    return profile


def test_shredding_from_the_command_line(embedded_world: World, tmp_path: Path) -> None:
    world = embedded_world
    admin = _enrolled(tmp_path / "admin", world, bootstrap_code(world.service, force_new_code=True))
    child = world.admin.create_child(display_name="Zoe", room="Rainbows")
    dsl = _enrolled(tmp_path / "dsl", world, world.code_for("dsl-z", kind="staff", roles=("dsl",)))
    world.assign("dsl-z", child, role="dsl")
    # The manager's code comes from the host: independent of the admin who enrolled the DSL.
    manager_id = world.admin.create_principal(
        kind="staff", display_name="manager-z", roles=("manager",)
    )
    world.ids["manager-z"] = manager_id
    manager = _enrolled(tmp_path / "manager", world, host_code(world.service, manager_id))
    world.assign("manager-z", child, role="manager")

    status, said = run_cli(admin, "admin", "shred", "request", "--child", child, "--reason", "x")
    assert status == EXIT_DENIED and "an admin alone may not" in said, said
    planned = as_json(
        dsl, "admin", "shred", "request", "--child", child, "--reason", "left", "--dry-run"
    )
    assert planned["shred_id"] is None and planned["state"] == "dry-run"

    hold = as_json(dsl, "admin", "hold", "set", child, "--reason", "court case")["hold_id"]
    status, said = run_cli(manager, "admin", "shred", "request", "--child", child, "--reason", "x")
    assert status != 0 and "legal hold" in said, said
    assert run_cli(manager, "admin", "hold", "lift", hold, "--reason", "closed")[0] == 0

    asked = as_json(
        dsl, "admin", "shred", "request", "--child", child, "--reason", "retention over"
    )
    shred_id = asked["shred_id"]
    status, said = run_cli(dsl, "admin", "shred", "approve", shred_id)
    assert status == EXIT_DENIED and "second manager or DSL" in said, said
    status, said = run_cli(admin, "admin", "shred", "approve", shred_id)
    assert status == EXIT_DENIED and "an admin alone cannot" in said, said
    assert as_json(manager, "admin", "shred", "approve", shred_id)["state"] == "approved"
    assert (
        as_json(dsl, "admin", "shred", "cancel", shred_id, "--reason", "wrong child")["state"]
        == "cancelled"
    )

    asked = as_json(
        dsl, "admin", "shred", "request", "--child", child, "--reason", "retention over"
    )
    shred_id = asked["shred_id"]
    as_json(manager, "admin", "shred", "approve", shred_id)
    engine = database(world.service)
    with engine.begin() as connection:  # the 30 days are over
        connection.execute(
            update(shred_requests)
            .where(shred_requests.c.shred_id == shred_id)
            .values(not_before=datetime(2000, 1, 1, tzinfo=UTC))
        )
    engine.dispose()
    listed = as_json(manager, "admin", "shred", "list")
    assert {s["shred_id"]: s["state"] for s in listed}[shred_id] == "done"
    saved = tmp_path / "certificate.json"
    certificate = as_json(manager, "admin", "shred", "certificate", shred_id, "-o", str(saved))
    assert certificate["certificate"]["approved_by"] == manager_id
    key = certificate["service_key"]
    verified = as_json(manager, "admin", "shred", "verify", str(saved), "--service-key", key)
    assert verified["child_id"] == child
    wrong = "A" * 43
    status, said = run_cli(manager, "admin", "shred", "verify", str(saved), "--service-key", wrong)
    assert status != 0 and "does not verify" in said, said
    assert isinstance(as_json(admin, "admin", "retention", "due"), list)
