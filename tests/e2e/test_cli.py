"""The carevault CLI against a real key service: enrol, put, list, get, --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clients.cli import app
from clients.output import EXIT_DENIED, EXIT_INTEGRITY
from tests.e2e.world import World
from tests.keyservice.helpers import bootstrap_code

pytestmark = pytest.mark.integration

PASSPHRASE = {"CAREVAULT_PASSPHRASE": "cli test passphrase"}
runner = CliRunner()


def _cli(profile: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--profile", str(profile), *args], env=PASSPHRASE)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout


def _enrol(world: World, tmp_path: Path, name: str, room_child: str) -> Path:
    code = world.code_for(name, kind="staff", roles=("educator",))
    world.admin.assign(staff_id=world.ids[name], child_id=world.children[room_child])
    profile = tmp_path / name
    status, out = _cli(profile, "--json", "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, out
    assert json.loads(out)["principal_id"] == world.ids[name]
    assert (profile / "device.key").stat().st_mode & 0o077 == 0
    return profile


def test_cli_round_trip_and_exit_codes(world: World, tmp_path: Path) -> None:
    ava = world.children["ava"]
    robins = _enrol(world, tmp_path, "fay", "ava")
    wrens = _enrol(world, tmp_path, "gus", "leo")

    status, out = _cli(robins, "--json", "whoami")
    assert status == 0 and json.loads(out)["display_name"] == "fay"
    status, out = _cli(robins, "--json", "children")
    assert ava in {c["child_id"] for c in json.loads(out)}

    note = tmp_path / "painting.txt"
    note.write_text("Ava painted a sun.\n")
    status, out = _cli(
        robins, "--json", "records", "put", str(note), "--child", ava, "--category", "observation"
    )
    assert status == 0, out
    record_id = json.loads(out)["record_id"]

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


def test_admin_runs_a_setting_from_the_cli(world: World, tmp_path: Path) -> None:
    admin = tmp_path / "admin"
    code = bootstrap_code(world.service, force_new_code=True)
    status, out = _cli(admin, "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, out

    def run(*args: str) -> dict[str, str]:
        status, out = _cli(admin, "--json", "admin", *args)
        assert status == 0, out
        parsed: dict[str, str] = json.loads(out)
        return parsed

    child = run("child", "add", "--name", "Mia", "--room", "Owls")["child_id"]
    staff = run("principal", "add", "--name", "Jo", "--role", "educator")["principal_id"]
    parent = run("principal", "add", "--name", "Kim", "--kind", "guardian")["principal_id"]
    run("assign", "--staff", staff, "--child", child)
    run("guardian", "--guardian", parent, "--child", child)
    staff_code = run("code", staff)["code"]

    jo = tmp_path / "jo"
    status, out = _cli(jo, "enroll", "--url", world.service.base_url, "--code", staff_code)
    assert status == 0, out
    status, out = _cli(jo, "--json", "children")
    assert [c["child_id"] for c in json.loads(out)] == [child]

    note = tmp_path / "owls.txt"
    note.write_text("Mia fed the fish.")
    status, out = _cli(
        jo, "--json", "records", "put", str(note), "--child", child, "--category", "observation"
    )
    assert status == 0, out
    record_id = json.loads(out)["record_id"]
    status, _ = _cli(admin, "records", "get", record_id, "-o", str(tmp_path / "peek"))
    assert status == EXIT_DENIED, "admin rights never give read rights"
    assert not (tmp_path / "peek").exists()

    run("revoke", "principal", staff)
    status, _ = _cli(jo, "whoami")
    assert status == EXIT_DENIED


def test_admin_assigns_until_a_date_given_without_an_offset(world: World, tmp_path: Path) -> None:
    """A time typed without an offset is read as UTC; the service refuses times without one."""
    admin = tmp_path / "admin"
    code = bootstrap_code(world.service, force_new_code=True)
    status, out = _cli(admin, "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, out
    status, out = _cli(
        admin, "--json", "admin", "principal", "add", "--name", "Lou", "--role", "educator"
    )
    assert status == 0, out
    staff = json.loads(out)["principal_id"]
    child = world.children["ava"]
    for until in ("2099-07-31", "2099-07-31T17:30"):
        status, out = _cli(
            admin,
            "--json",
            "admin",
            "assign",
            "--staff",
            staff,
            "--child",
            child,
            "--until",
            until,
        )
        assert status == 0, out
        assert json.loads(out)["assignment_id"]
    status, out = _cli(
        admin, "admin", "assign", "--staff", staff, "--child", child, "--until", "31/07/2099"
    )
    assert status == 2, "a date in another shape is refused before any request"
