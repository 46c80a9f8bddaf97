"""``carevault admin room …`` and ``carevault admin import`` against a real key service
(issue 15, part 4): a bad file is refused row by row and changes nothing; a dry run shows the
diff; a file that gives read rights is proposed as one batch the second admin approves, after
which the room's educator reads the child's records. The key service's own tests cover both
databases (tests/keyservice/test_rooms.py)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from clients.output import EXIT_USAGE
from tests.e2e.cli import as_json, run_cli
from tests.e2e.world import World
from tests.keyservice.helpers import bootstrap_code
from vault.client import Client, Proposal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin(embedded_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = bootstrap_code(embedded_world.service, force_new_code=True)
    profile = tmp_path_factory.mktemp("rooms-admin")
    status, said = run_cli(
        profile, "enroll", "--url", embedded_world.service.base_url, "--code", code
    )
    assert status == 0, said
    return profile


def test_rooms_and_imports_from_the_command_line(
    embedded_world: World, admin: Path, tmp_path: Path
) -> None:
    world = embedded_world
    name = f"Owls {uuid.uuid4().hex[:6]}"
    made = as_json(admin, "admin", "room", "add", name)
    assert isinstance(made, dict)
    room_id = str(made["room_id"])
    child = world.admin.create_child(display_name="Olu")
    educator = world.person(f"teacher-{uuid.uuid4().hex[:6]}", kind="staff", roles=("educator",))
    educator_id = educator.whoami().principal_id

    bad = tmp_path / "children.csv"
    bad.write_text(
        f"child_id,room,valid_from,valid_to\n{child},{name},,\n{child},No such room,,\n"
        f"{child},{name},2027-02-01,2027-01-01\n"
    )
    status, said = run_cli(admin, "admin", "import", str(bad))
    assert status == EXIT_USAGE, said
    assert "nothing was imported" in said and "unknown_room" in said and "ends_before_start" in said
    assert world.admin.room(room_id).memberships == ()

    good = tmp_path / "children-ok.csv"
    good.write_text(f"child_id,room,valid_from,valid_to\n{child},{name},,\n")
    status, said = run_cli(admin, "admin", "import", str(good), "--dry-run")
    assert status == 0 and "Dry run: nothing changed" in said, said
    assert world.admin.room(room_id).memberships == ()
    status, said = run_cli(admin, "admin", "import", str(good))
    assert status == 0 and "Applied" in said, said

    staff = tmp_path / "staff.csv"
    staff.write_text(f"staff_id,room,role,valid_from,valid_to\n{educator_id},{name},educator,,\n")
    status, said = run_cli(admin, "admin", "import", str(staff))
    assert status == 0 and "Proposed, waiting for approval" in said and "another admin" in said
    pending = [p for p in world.approver.proposals() if p.action == "rooms.import"]
    assert pending and isinstance(pending[-1], Proposal)
    assert world.approver.approve(pending[-1].proposal_id).state == "approved"

    shown = as_json(admin, "admin", "room", "show", name)
    assert isinstance(shown, dict)
    people = {m["person_id"] for m in shown["memberships"]}
    assert people == {child, educator_id}
    listed = as_json(admin, "admin", "room", "list")
    assert isinstance(listed, list)
    assert any(r["name"] == name and r["staff_now"] == 1 for r in listed)


def test_importing_new_children_and_staff_from_the_command_line(
    embedded_world: World, admin: Path, tmp_path: Path
) -> None:
    """A ``name,…`` file creates people (decision 0027): bad rows refused by line; new staff
    proposed as one batch, their first codes printed once to the admin who approves."""
    world = embedded_world
    tag = uuid.uuid4().hex[:6]
    room = f"Larks {tag}"
    as_json(admin, "admin", "room", "add", room)

    bad = tmp_path / "children-bad.csv"
    bad.write_text(
        f"name,date_of_birth,left_on,room,valid_from\nAda {tag},2023-01-01,,{room},\n"
        f",2023-01-01,,{room},\nBo {tag},2023-05-01,2023-01-01,,\n"
    )
    status, said = run_cli(admin, "admin", "import", str(bad))
    assert status == EXIT_USAGE, said
    assert "missing_name" in said and "left_before_birth" in said

    kids = tmp_path / "children.csv"
    kids.write_text(f"name,date_of_birth,left_on,room,valid_from\nAda {tag},2023-01-01,,{room},\n")
    status, said = run_cli(admin, "admin", "import", str(kids), "--dry-run")
    assert status == 0 and "1 to create" in said and f"Ada {tag}" in said, said
    status, said = run_cli(admin, "admin", "import", str(kids))
    assert status == 0 and "Applied" in said, said

    staff = tmp_path / "staff.csv"
    staff.write_text(f"name,roles,room,role,valid_from\nMo {tag},educator,{room},educator,\n")
    status, said = run_cli(admin, "admin", "import", str(staff))
    assert status == 0 and "Proposed, waiting for approval" in said, said
    assert not re.search(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}", said), said
    pending = [p for p in world.approver.proposals() if p.action == "rooms.import"]
    proposal_id = pending[-1].proposal_id

    # A second admin with a profile of their own approves at the command line.
    made = world.admin.propose_admin(display_name=f"Approver {tag}")
    assert isinstance(made, Proposal)
    decided = world.approver.approve(made.proposal_id)
    assert decided.enrolment_code is not None
    approver = tmp_path / "approver"
    status, said = run_cli(
        approver, "enroll", "--url", world.service.base_url, "--code", decided.enrolment_code.code
    )
    assert status == 0, said
    status, said = run_cli(approver, "proposals", "approve", proposal_id)
    assert status == 0, said
    assert "Enrolment codes of the new staff" in said and f"Mo {tag}" in said
    found = re.search(rf"Mo {tag} \(([0-9a-f]{{32}})\): ([A-Z2-7-]+) ", said)
    assert found is not None, said
    mo, _ = Client.enrol(world.service.base_url, found.group(2), "mo's phone")
    assert mo.whoami().principal_id == found.group(1)
    assert mo.whoami().display_name == f"Mo {tag}"
    mo.close()
