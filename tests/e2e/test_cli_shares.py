"""``carevault shares …`` against a real key service: a DSL shares Ava's records with an
outside recipient on Grace's consent, the recipient lists and downloads them, a rerun skips
what is already here and checked, and refusals exit with the documented codes.

Negative tests first: a revoked share, a spent cap, another recipient's share, a damaged file,
and the commands refused before any request (exit code 2).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clients.cli import app
from clients.output import EXIT_DENIED, EXIT_USAGE
from tests.e2e.world import World
from vault.client import Client, Proposal

pytestmark = pytest.mark.integration

PASSPHRASE = {"CAREVAULT_PASSPHRASE": "cli shares passphrase"}
runner = CliRunner()
FRAME = str.maketrans(dict.fromkeys("│╭╮╰╯─", " "))
NOTE = b"Ava built a tower of six blocks.\n"
LETTER = b"Referral to speech therapy.\n" * 50


@dataclass
class Setting:
    """Ava's DSL (a CLI profile), the agency as a CLI profile and as its other device (the
    SDK), Grace's consent to share with the agency, and two records of Ava."""

    dsl: Path
    agency: Path
    agency_phone: Client
    consent: str
    note: str
    letter: str


def _cli(profile: Path, *args: str) -> tuple[int, str, str]:
    """Exit code, standard output, and everything printed (errors included) as one line of
    words, without the frame Click draws around a usage error."""
    result = runner.invoke(app, ["--profile", str(profile), *args], env=PASSPHRASE)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, " ".join(result.output.translate(FRAME).split())


def _json(profile: Path, *args: str) -> Any:
    status, out, said = _cli(profile, "--json", *args)
    assert status == 0, said
    return json.loads(out)


def _enroll(world: World, profile: Path, code: str) -> Path:
    status, _, said = _cli(profile, "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, said
    return profile


def _files(directory: Path) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in directory.iterdir() if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def setting(embedded_world: World, tmp_path_factory: pytest.TempPathFactory) -> Setting:
    world = embedded_world
    ava = world.children["ava"]
    dsl = _enroll(
        world, tmp_path_factory.mktemp("dsl"), world.code_for("dee", kind="staff", roles=("dsl",))
    )
    world.assign("dee", ava, role="dsl")
    agency_id = world.admin.create_principal(
        kind="external", display_name="Rita", organisation="Riverside Speech"
    )
    issued = world.admin.enrolment_code(agency_id)
    assert not isinstance(issued, Proposal)
    phone, _identity = Client.enrol(world.service.base_url, issued.code, "Rita's phone")
    world.people["rita"] = phone
    agency = _enroll(world, tmp_path_factory.mktemp("agency"), phone.add_device_code().code)
    grace = world.people["grace"]
    consent = grace.record_consent(
        child_id=ava,
        given_by=world.ids["grace"],
        recipient_id=agency_id,
        categories=["observation", "medical"],
        purpose="speech therapy referral",
    )
    assert isinstance(consent, str)
    dana = world.people["dana"]

    def put(category: str, name: str, data: bytes) -> str:
        ref = dana.put(child_ids=[ava], category=category, stream=io.BytesIO(data), file_name=name)
        return ref.record_id

    return Setting(
        dsl=dsl,
        agency=agency,
        agency_phone=phone,
        consent=consent,
        note=put("observation", "note.txt", NOTE),
        letter=put("medical", "letter.txt", LETTER),
    )


def _share(setting: Setting, *extra: str) -> dict[str, Any]:
    made: dict[str, Any] = _json(
        setting.dsl,
        "shares",
        "create",
        "--recipient",
        setting.agency_phone.identity.principal_id,
        "--consent",
        setting.consent,
        "--purpose",
        "speech therapy referral",
        "--record",
        setting.note,
        "--record",
        setting.letter,
        *extra,
    )
    return made


def test_get_of_a_revoked_share_exits_denied_and_writes_nothing(
    setting: Setting, tmp_path: Path
) -> None:
    made = _share(setting)
    revoked = _json(setting.dsl, "shares", "revoke", made["share_id"], "--reason", "wrong file")
    assert revoked == {"share_id": made["share_id"], "state": "revoked"}
    out = tmp_path / "got"

    status, _, said = _cli(setting.agency, "shares", "get", made["share_id"], "-o", str(out))

    assert status == EXIT_DENIED, said
    assert "the share is revoked" in said and made["share_id"] in said
    assert _files(out) == {}
    argv = ["--profile", str(setting.agency), "--json", "shares", "get", made["share_id"]]
    result = runner.invoke(app, [*argv, "-o", str(out)], env=PASSPHRASE)
    assert result.exit_code == EXIT_DENIED and result.stdout == ""
    error = json.loads(result.stderr)
    assert error["exit_code"] == EXIT_DENIED and "revoked" in error["error"]


def test_a_spent_cap_exits_denied_naming_the_record_and_keeps_the_rest(
    setting: Setting, tmp_path: Path
) -> None:
    made = _share(setting, "--cap", "1")
    first, last = (item["record_id"] for item in made["items"])
    contents = {setting.note: ("note.txt", NOTE), setting.letter: ("letter.txt", LETTER)}
    # The recipient's phone spends the only download of the share's last record.
    setting.agency_phone.get(last, dst=tmp_path, version=1)
    out = tmp_path / "got"

    status, _, said = _cli(setting.agency, "shares", "get", made["share_id"], "-o", str(out))

    assert status == EXIT_DENIED, said
    assert last in said and "download cap is spent" in said
    assert _files(out) == dict([contents[first]])
    shown = _json(setting.agency, "shares", "show", made["share_id"])
    assert {i["record_id"]: i["remaining"] for i in shown["items"]} == {
        setting.note: 0,
        setting.letter: 0,
    }


def test_another_recipients_share_is_not_found(
    embedded_world: World, setting: Setting, tmp_path: Path
) -> None:
    made = _share(setting)
    world = embedded_world
    other_id = world.admin.create_principal(
        kind="external", display_name="Otto", organisation="Elsewhere"
    )
    issued = world.admin.enrolment_code(other_id)
    assert not isinstance(issued, Proposal)
    other = _enroll(world, tmp_path / "other", issued.code)
    out = tmp_path / "got"

    for argv in (["get", made["share_id"], "-o", str(out)], ["show", made["share_id"]]):
        status, _, said = _cli(other, "shares", *argv)
        assert status == EXIT_DENIED, said
        assert "does not know this item" in said
    assert _json(other, "shares", "list") == []
    assert not out.exists()


def test_a_damaged_file_is_fetched_again_and_a_checked_rerun_fetches_nothing(
    setting: Setting, tmp_path: Path
) -> None:
    made = _share(setting)
    out = tmp_path / "got"
    first = _json(setting.agency, "shares", "get", made["share_id"], "-o", str(out))
    assert (len(first["fetched"]), first["skipped"]) == (2, [])
    (out / "letter.txt").write_bytes(b"tampered")

    again = _json(setting.agency, "shares", "get", made["share_id"], "-o", str(out))
    assert [i["record_id"] for i in again["fetched"]] == [setting.letter]
    assert [i["record_id"] for i in again["skipped"]] == [setting.note]
    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER}

    status, _, said = _cli(setting.agency, "shares", "get", made["share_id"], "-o", str(out))
    assert status == 0, said
    assert "Received 0 record(s)" in said and "2 already there and checked" in said


@pytest.mark.parametrize(
    ("argv", "told"),
    [
        pytest.param(
            ["--consent", "c" * 32, "--court-order", "d" * 32, "--record", "e" * 32],
            "give exactly one of --consent and --court-order",
            id="two-bases",
        ),
        pytest.param(
            ["--record", "e" * 32], "give exactly one of --consent and --court-order", id="none"
        ),
        pytest.param(
            ["--consent", "c" * 32, "--record", "e" * 32, "--category", "medical"],
            "give either --record or --category",
            id="records-and-categories",
        ),
        pytest.param(
            ["--consent", "c" * 32, "--record", "e" * 32, "--until", "2099-01-01", "--days", "3"],
            "give --until or --days, not both",
            id="until-and-days",
        ),
        pytest.param(
            ["--consent", "c" * 32, "--record", "e" * 32, "--until", "2001-01-01"],
            "is already past",
            id="past",
        ),
        pytest.param(
            ["--consent", "c" * 32, "--record", "e" * 32, "--cap", "0"],
            "--cap",
            id="cap-zero",
        ),
    ],
)
def test_create_refuses_a_wrong_command_before_asking_the_key_service(
    tmp_path: Path, argv: list[str], told: str
) -> None:
    # No profile at all: a command that got as far as a request would fail otherwise.
    status, out, said = _cli(
        tmp_path / "nobody",
        "shares",
        "create",
        "--recipient",
        "a" * 32,
        "--purpose",
        "referral",
        *argv,
    )
    assert status == EXIT_USAGE, said
    assert out == ""
    assert told in said


def test_the_dsl_shares_the_recipient_lists_shows_and_gets_in_json_and_words(
    setting: Setting, tmp_path: Path
) -> None:
    status, _, said = _cli(
        setting.dsl,
        "shares",
        "create",
        "--recipient",
        setting.agency_phone.identity.principal_id,
        "--consent",
        setting.consent,
        "--purpose",
        "speech therapy referral",
        "--category",
        "medical",
        "--days",
        "3",
        "--cap",
        "2",
    )
    assert status == 0, said
    assert "Shared 1 record(s) with" in said
    share_id = said.split("share ")[-1].strip()
    made = _json(setting.dsl, "shares", "show", share_id)
    assert made["state"] == "active" and made["download_cap"] == 2
    assert [(i["record_id"], i["version"]) for i in made["items"]] == [(setting.letter, 1)]

    listed = {s["share_id"]: s for s in _json(setting.agency, "shares", "list")}
    assert [(i["used"], i["remaining"]) for i in listed[share_id]["items"]] == [(0, 2)]
    status, _, said = _cli(setting.agency, "shares", "list")
    assert status == 0 and share_id in said and " you " in said

    out = tmp_path / "got"
    status, _, said = _cli(setting.agency, "shares", "get", share_id, "-o", str(out))
    assert status == 0, said
    assert "Received 1 record(s)" in said
    assert _files(out) == {"letter.txt": LETTER}

    status, _, said = _cli(setting.dsl, "shares", "show", share_id)
    assert status == 0 and f"Share {share_id}: active" in said
    assert setting.letter in said and "speech therapy referral" in said
