"""The carevault CLI against a real key service: enrol, put, list, get, --json, exit codes;
an admin's proposals approved by a second admin; a person's own devices and notifications."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clients.cli import app
from clients.output import EXIT_DENIED, EXIT_INTEGRITY
from tests.e2e.world import World
from tests.keyservice.helpers import bootstrap_code, host_approve

pytestmark = pytest.mark.integration

PASSPHRASE = {"CAREVAULT_PASSPHRASE": "cli test passphrase"}
runner = CliRunner()


HOST_CODE = re.compile(r"enrolment code .*: ([A-Z2-7-]+)\s*$", re.MULTILINE)
PROPOSAL = re.compile(r"proposal ([0-9a-f]{32})")


def _cli(profile: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--profile", str(profile), *args], env=PASSPHRASE)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout


def _said(profile: Path, *args: str) -> tuple[int, str]:
    """Exit code and everything printed, errors included, as one line of words."""
    result = runner.invoke(app, ["--profile", str(profile), *args], env=PASSPHRASE)
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _json(profile: Path, *args: str) -> dict[str, object]:
    status, out = _cli(profile, "--json", *args)
    assert status == 0, out
    parsed: dict[str, object] = json.loads(out)
    return parsed


def _put_note(profile: Path, note: Path, text: str, child: str) -> str:
    """Write ``text`` to ``note`` and put it as an observation of ``child``; its record id."""
    note.write_text(text)
    put = _json(profile, "records", "put", str(note), "--child", child, "--category", "observation")
    return str(put["record_id"])


def _enroll(profile: Path, world: World, code: str, *args: str) -> None:
    status, out = _cli(profile, "enroll", "--url", world.service.base_url, "--code", code, *args)
    assert status == 0, out


def _enrol(world: World, tmp_path: Path, name: str, room_child: str) -> Path:
    """A new educator enrolled with the CLI (before any rights: a code an admin issued alone
    is stale after that), then assigned: proposed by the admin, approved by the second."""
    code = world.code_for(name, kind="staff", roles=("educator",))
    profile = tmp_path / name
    status, out = _cli(profile, "--json", "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, out
    assert json.loads(out)["principal_id"] == world.ids[name]
    assert (profile / "device.key").stat().st_mode & 0o077 == 0
    world.assign(name, world.children[room_child])
    return profile


@pytest.fixture(scope="module")
def admins(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """CLI profiles of the first admin (a new device) and of Pat, a second admin the first
    proposed from the CLI and the host approved: Pat's code only the host printed."""
    admin = tmp_path_factory.mktemp("admin")
    _enroll(admin, world, bootstrap_code(world.service, force_new_code=True))
    name = "Pat [/bold] O'Neil"  # brackets Rich would read as markup are printed as typed
    status, said = _said(admin, "admin", "principal", "add", "--name", name, "--role", "admin")
    assert status == 0, said
    assert "Proposed, waiting for approval: add an admin (proposal " in said
    found = PROPOSAL.search(said)
    assert found is not None, said
    status, said = _said(admin, "proposals", "show", found.group(1))
    assert status == 0, said
    assert f"display_name: {name}" in said
    status, said = _said(admin, "proposals", "list")
    assert status == 0 and found.group(1) in said, "a listed id is printed whole, to be copied"
    printed = HOST_CODE.search(host_approve(world.service, found.group(1)))
    assert printed is not None
    pat = tmp_path_factory.mktemp("pat")
    _enroll(pat, world, printed.group(1))
    assert "admin" in _json(pat, "whoami")["roles"]  # type: ignore[operator]
    return admin, pat


def test_cli_round_trip_and_exit_codes(world: World, tmp_path: Path) -> None:
    ava = world.children["ava"]
    robins = _enrol(world, tmp_path, "fay", "ava")
    wrens = _enrol(world, tmp_path, "gus", "leo")

    status, out = _cli(robins, "--json", "whoami")
    assert status == 0 and json.loads(out)["display_name"] == "fay"
    status, out = _cli(robins, "--json", "children")
    assert ava in {c["child_id"] for c in json.loads(out)}

    record_id = _put_note(robins, tmp_path / "painting.txt", "Ava painted a sun.\n", ava)

    status, out = _cli(robins, "--json", "records", "list", "--child", ava)
    listed = {r["record_id"]: r for r in json.loads(out)}
    assert listed[record_id]["file_name"] == "painting.txt"
    assert listed[record_id]["content_type"] == "text/plain"

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    status, out = _cli(robins, "--json", "records", "get", record_id, "-o", str(downloads))
    assert status == 0, out
    assert (downloads / "painting.txt").read_text() == "Ava painted a sun.\n"

    status, out = _cli(
        robins,
        "records",
        "get",
        record_id,
        "--offset",
        "4",
        "--length",
        "7",
        "-o",
        str(tmp_path / "slice"),
    )
    assert status == 0
    assert (tmp_path / "slice").read_bytes() == b"painted"

    denied = tmp_path / "denied.txt"
    result = runner.invoke(
        app,
        ["--profile", str(wrens), "records", "get", record_id, "-o", str(denied)],
        env=PASSPHRASE,
    )
    assert result.exit_code == EXIT_DENIED
    assert "ask your manager to check your room assignment" in " ".join(result.output.split())
    assert not denied.exists()

    status, out = _cli(robins, "--json", "records", "history", record_id)
    assert [v["version"] for v in json.loads(out)] == [1]

    piped = runner.invoke(
        app,
        [
            "--profile",
            str(robins),
            "--json",
            "records",
            "put",
            "-",
            "--child",
            ava,
            "--category",
            "observation",
            "--name",
            "from-stdin.txt",
        ],
        env=PASSPHRASE,
        input=b"typed at the terminal\n",
    )
    assert piped.exit_code == 0, piped.output
    piped_id = json.loads(piped.stdout)["record_id"]
    status, out = _cli(robins, "--json", "records", "get", piped_id, "-o", str(downloads))
    assert status == 0, out
    assert (downloads / "from-stdin.txt").read_bytes() == b"typed at the terminal\n"

    status, out = _cli(wrens, "--json", "records", "rm", record_id, "--yes")
    assert status == EXIT_DENIED, "an educator may not destroy records"


def test_cli_integrity_failure_exits_4_and_writes_nothing(world: World, tmp_path: Path) -> None:
    profile = _enrol(world, tmp_path, "hal", "noah")
    before = world.storage.objects()
    photo = tmp_path / "photo.bin"
    photo.write_bytes(b"\x01\x02" * 300_000)
    status, out = _cli(
        profile,
        "--json",
        "records",
        "put",
        str(photo),
        "--child",
        world.children["noah"],
        "--category",
        "photo",
    )
    assert status == 0, out
    record_id = json.loads(out)["record_id"]
    (name,) = [k for k in world.storage.objects() if k not in before]
    world.storage.flip_byte(name, 400_000)
    target = tmp_path / "out" / "photo.bin"
    target.parent.mkdir()
    result = runner.invoke(
        app,
        ["--profile", str(profile), "records", "get", record_id, "-o", str(target)],
        env=PASSPHRASE,
    )
    assert result.exit_code == EXIT_INTEGRITY
    assert "integrity check" in result.output
    assert list(target.parent.iterdir()) == []


def test_admin_runs_a_setting_from_the_cli(
    world: World, admins: tuple[Path, Path], tmp_path: Path
) -> None:
    admin, pat = admins

    def run(*args: str) -> dict[str, object]:
        return _json(admin, "admin", *args)

    child = str(run("child", "add", "--name", "Mia", "--room", "Owls")["child_id"])
    staff = str(run("principal", "add", "--name", "Jo", "--role", "educator")["principal_id"])
    parent = str(run("principal", "add", "--name", "Kim", "--kind", "guardian")["principal_id"])
    staff_code = str(run("code", staff)["code"])
    jo = tmp_path / "jo"
    _enroll(jo, world, staff_code)

    status, said = _said(admin, "admin", "assign", "--staff", staff, "--child", child)
    assert status == 0, said
    assert "waiting for approval" in said
    found = PROPOSAL.search(said)
    assert found is not None, said
    assignment = found.group(1)
    assert f"carevault proposals approve {assignment}" in said
    status, out = _cli(jo, "--json", "children")
    assert status == 0 and json.loads(out) == [], "nothing changes until a second person approves"

    status, said = _said(admin, "proposals", "approve", assignment)
    assert status == EXIT_DENIED, "nobody approves their own proposal"
    assert "no pending proposal with this id that you may decide" in said
    assert "Ask another admin, or the child's manager or DSL" in said

    waiting = _cli(pat, "--json", "proposals", "list")[1]
    assert assignment in {p["proposal_id"] for p in json.loads(waiting)}
    status, said = _said(pat, "proposals", "show", assignment)
    assert status == 0, said
    assert "assign staff to a child (pending)" in said
    assert f"staff_id: {staff}" in said
    decided = _json(pat, "proposals", "approve", assignment, "--reason", "Owls room rota")
    assert decided["state"] == "approved"
    assert decided["decided_by"] == _json(pat, "whoami")["principal_id"]
    assert decided["enrolment_code"] is None
    status, out = _cli(jo, "--json", "children")
    assert [c["child_id"] for c in json.loads(out)] == [child]
    status, said = _said(pat, "proposals", "approve", assignment)
    assert status == EXIT_DENIED, "a decided proposal cannot be approved again"

    guardian = str(run("guardian", "--guardian", parent, "--child", child)["proposal_id"])
    status, said = _said(pat, "proposals", "reject", guardian, "--reason", "wrong family")
    assert status == 0, said
    assert said.startswith("Rejected: record a guardian")
    mine = {p["proposal_id"]: p for p in json.loads(_cli(admin, "--json", "proposals", "list")[1])}
    assert mine[guardian]["state"] == "rejected"
    assert mine[guardian]["reason"] == "wrong family"
    again = str(run("guardian", "--guardian", parent, "--child", child)["proposal_id"])
    status, said = _said(admin, "proposals", "reject", again)
    assert status == 0 and said.startswith("Withdrawn: record a guardian"), said
    assert _json(admin, "proposals", "show", again)["state"] == "cancelled"

    record_id = _put_note(jo, tmp_path / "owls.txt", "Mia fed the fish.", child)
    status, _ = _cli(admin, "records", "get", record_id, "-o", str(tmp_path / "peek"))
    assert status == EXIT_DENIED, "admin rights never give read rights"
    assert not (tmp_path / "peek").exists()

    run("revoke", "principal", staff)
    status, _ = _cli(jo, "whoami")
    assert status == EXIT_DENIED


def test_a_lost_device_is_recovered_with_a_second_persons_approval(
    world: World, admins: tuple[Path, Path], tmp_path: Path
) -> None:
    """A code for someone who has a device is a proposal; its approver gets the code, and the
    person is told, by a notification, that a device was recovered for them."""
    admin, pat = admins
    laptop = _enrol(world, tmp_path, "noor", "leo")
    status, said = _said(admin, "admin", "code", world.ids["noor"])
    assert status == 0, said
    assert "waiting for approval" in said
    assert "Enrolment code:" not in said, "the code goes to the approver, not the proposer"
    found = PROPOSAL.search(said)
    assert found is not None, said
    status, said = _said(pat, "proposals", "approve", found.group(1))
    assert status == 0, said
    printed = re.search(r"Enrolment code: ([A-Z2-7-]+) ", said)
    assert printed is not None, said
    assert "Hand it to the person yourself" in said
    tablet = tmp_path / "noor-tablet"
    _enroll(tablet, world, printed.group(1), "--device-name", "noor's tablet")

    status, out = _cli(laptop, "--json", "devices", "list")
    assert status == 0, out
    listed = {d["name"]: d for d in json.loads(out)}
    pat_id = _json(pat, "whoami")["principal_id"]
    assert listed["noor's tablet"]["origin"] == "recovered"
    assert listed["noor's tablet"]["approved_by"] == pat_id
    assert listed["noor's tablet"]["current"] is False
    status, said = _said(laptop, "devices", "list")
    assert status == 0, said
    tablet_id = listed["noor's tablet"]["device_id"]
    assert f"Device {tablet_id} was enrolled with a code {pat_id} approved." in said
    status, out = _cli(laptop, "--json", "notifications")
    assert status == 0, out
    kinds = {n["kind"] for n in json.loads(out)}
    assert {"device.recovery_approved", "device.recovered"} <= kinds
    status, said = _said(laptop, "notifications")
    assert "a device was enrolled for you with a recovery code" in said


def test_devices_add_list_and_revoke(world: World, tmp_path: Path) -> None:
    laptop = _enrol(world, tmp_path, "ida", "leo")
    status, said = _said(laptop, "devices", "add")
    assert status == 0, said
    assert f"carevault enroll --url {world.service.base_url} --code" in said
    added = _json(laptop, "devices", "add")
    assert added["url"] == world.service.base_url
    phone = tmp_path / "ida-phone"
    _enroll(phone, world, str(added["code"]), "--device-name", "ida's phone")
    status, _ = _cli(
        tmp_path / "again", "enroll", "--url", world.service.base_url, "--code", str(added["code"])
    )
    assert status != 0, "a code enrols one device only"

    status, out = _cli(phone, "--json", "devices", "list")
    assert status == 0, out
    listed = {d["origin"]: d for d in json.loads(out)}
    assert set(listed) == {"first", "added"}
    assert listed["added"]["name"] == "ida's phone"
    assert listed["added"]["current"] is True
    assert listed["first"]["current"] is False
    status, out = _cli(phone, "--json", "children")
    assert [c["child_id"] for c in json.loads(out)] == [world.children["leo"]]
    status, said = _said(laptop, "devices", "list")
    assert status == 0 and said.startswith("Your devices"), said

    spare_code = str(_json(phone, "devices", "add")["code"])
    phone_id = listed["added"]["device_id"]
    status, said = _said(laptop, "devices", "revoke", phone_id)
    assert status == 0 and said == "The device is revoked.", said
    status, _ = _cli(phone, "whoami")
    assert status == EXIT_DENIED
    status, _ = _cli(
        tmp_path / "spare", "enroll", "--url", world.service.base_url, "--code", spare_code
    )
    assert status != 0, "a code issued from a device dies with the device"
    revoked = {d["device_id"]: d for d in json.loads(_cli(laptop, "--json", "devices", "list")[1])}
    assert revoked[phone_id]["revoked_at"] is not None

    amira_device = world.people["amira"].identity.device_id
    status, _ = _cli(laptop, "devices", "revoke", amira_device)
    assert status == EXIT_DENIED, "nobody but an admin revokes another person's device"
    assert world.people["amira"].whoami().device_id == amira_device


def test_admin_assigns_until_a_date_given_without_an_offset(
    world: World, admins: tuple[Path, Path]
) -> None:
    """A time typed without an offset is read as UTC; the service refuses times without one."""
    admin, _ = admins
    staff = str(
        _json(admin, "admin", "principal", "add", "--name", "Lou", "--role", "educator")[
            "principal_id"
        ]
    )
    child = world.children["ava"]
    for until, sent in (
        ("2099-07-31", "2099-07-31T00:00:00Z"),
        ("2099-07-31T17:30", "2099-07-31T17:30:00Z"),
    ):
        proposed = _json(
            admin, "admin", "assign", "--staff", staff, "--child", child, "--until", until
        )
        assert proposed["state"] == "pending"
        assert proposed["action"] == "assignment.create"
        assert set(proposed) >= {"proposal_id", "child_id", "beneficiary_id", "expires_at"}
        assert "payload" not in proposed
        seen = world.approver.proposal(str(proposed["proposal_id"]))
        assert seen.payload["valid_to"] == sent
    status, _ = _cli(
        admin, "admin", "assign", "--staff", staff, "--child", child, "--until", "31/07/2099"
    )
    assert status == 2, "a date in another shape is refused before any request"
