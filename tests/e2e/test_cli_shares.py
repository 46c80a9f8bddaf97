"""``carevault shares …`` against a real key service: a DSL shares Ava's records with an
outside recipient on Grace's consent, the recipient lists and downloads them, a rerun skips
what is already here and checked, and refusals exit with the documented codes.

Negative tests first: a revoked share, a spent cap, another recipient's share, a damaged file,
and the commands refused before any request (exit code 2). Then receipts: ``ack`` refused
here when something was not received (nothing sent), refused by the service for a tampered
digest (exit code 2) or a second time (exit code 1); ``status`` from sent to acknowledged;
``overdue``.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clients.cli import app
from clients.output import EXIT_DENIED, EXIT_ERROR, EXIT_USAGE
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
        pytest.param(
            [
                *("--consent", "c" * 32, "--record", "e" * 32),
                *("--ack-within", "2", "--ack-by", "2099-01-01"),
            ],
            "give --ack-within or --ack-by, not both",
            id="two-deadlines",
        ),
        pytest.param(
            ["--consent", "c" * 32, "--record", "e" * 32, "--ack-by", "2001-01-01"],
            "--ack-by (2001-01-01 00:00 UTC) is already past",
            id="deadline-past",
        ),
        pytest.param(
            ["--consent", "c" * 32, "--record", "e" * 32, "--days", "3", "--ack-within", "4"],
            "is after the share ends",
            id="deadline-after-end",
        ),
        pytest.param(
            ["--consent", "c" * 32, "--record", "e" * 32, "--ack-within", "0"],
            "--ack-within",
            id="deadline-zero",
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


# --- receipts: ack, status, overdue ---------------------------------------------------------


def _manifest(out: Path, share_id: str) -> Path:
    return out / f".carevault-share-{share_id}.json"


def test_ack_before_anything_is_received_exits_1_and_sends_nothing(
    setting: Setting, tmp_path: Path
) -> None:
    made = _share(setting)
    out = tmp_path / "got"
    # Only the note is received: the manifest lacks the letter.
    _json(setting.agency, "shares", "get", made["share_id"], "-o", str(out))
    path = _manifest(out, made["share_id"])
    manifest = json.loads(path.read_text())
    manifest["items"] = [e for e in manifest["items"] if e["record_id"] == setting.note]
    path.write_text(json.dumps(manifest))

    status, out_text, said = _cli(setting.agency, "shares", "ack", made["share_id"], "-o", str(out))

    assert status == EXIT_ERROR, said
    assert out_text == ""
    assert "was not acknowledged" in said and setting.letter in said
    assert "nothing was sent" in said and "carevault shares get" in said
    shown = _json(setting.dsl, "shares", "status", made["share_id"])
    assert (shown["status"], shown["acknowledged_at"]) == ("opened", None)
    argv = ["--profile", str(setting.agency), "--json", "shares", "ack", made["share_id"]]
    result = runner.invoke(app, [*argv, "-o", str(tmp_path / "empty")], env=PASSPHRASE)
    assert result.exit_code == EXIT_ERROR and result.stdout == ""
    error = json.loads(result.stderr)
    assert error["exit_code"] == EXIT_ERROR and setting.note in error["error"]


def test_ack_with_a_tampered_digest_is_refused_by_the_service_and_not_stored(
    setting: Setting, tmp_path: Path
) -> None:
    made = _share(setting)
    out = tmp_path / "got"
    _json(setting.agency, "shares", "get", made["share_id"], "-o", str(out))
    path = _manifest(out, made["share_id"])
    manifest = json.loads(path.read_text())
    manifest["items"][0]["ciphertext_sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))

    status, _, said = _cli(setting.agency, "shares", "ack", made["share_id"], "-o", str(out))

    assert status == EXIT_USAGE, said
    assert "digest differs" in said and manifest["items"][0]["record_id"] in said
    shown = _json(setting.dsl, "shares", "status", made["share_id"])
    assert (shown["status"], shown["acknowledged_at"]) == ("opened", None)


def test_a_share_moves_from_sent_to_opened_to_acknowledged_once(
    setting: Setting, tmp_path: Path
) -> None:
    made = _share(setting, "--days", "5", "--ack-within", "2")
    share_id = made["share_id"]
    due = datetime.fromisoformat(made["ack_due"])
    assert timedelta(days=1, hours=23) < due - datetime.now(UTC) <= timedelta(days=2)
    sent = _json(setting.dsl, "shares", "status", share_id)
    assert (sent["status"], sent["opened_at"], sent["overdue"]) == ("sent", None, False)
    status, _, said = _cli(setting.dsl, "shares", "status", share_id)
    assert status == 0, said
    assert f"Share {share_id}: sent" in said and "opened: not yet" in said
    assert "acknowledged: not yet" in said and "acknowledgement due: 20" in said

    out = tmp_path / "got"
    status, _, said = _cli(setting.agency, "shares", "get", share_id, "-o", str(out))
    assert status == 0 and f"carevault shares ack {share_id}" in said
    opened = _json(setting.dsl, "shares", "status", share_id)
    assert opened["status"] == "opened" and opened["opened_at"] is not None

    status, _, said = _cli(setting.agency, "shares", "ack", share_id, "-o", str(out))

    assert status == 0, said
    assert f"Acknowledged share {share_id}: 2 record(s)" in said
    acked = _json(setting.dsl, "shares", "status", share_id)
    assert acked["status"] == "acknowledged" and acked["acknowledged_at"] is not None
    assert acked["acknowledged_device"] is not None and acked["overdue"] is False
    status, _, said = _cli(setting.dsl, "shares", "status", share_id)
    assert f"Share {share_id}: acknowledged" in said
    assert acked["acknowledged_device"] in said and ", met" in said
    assert setting.note in said and setting.letter in said

    status, _, said = _cli(setting.agency, "shares", "ack", share_id, "-o", str(out))
    assert status == EXIT_ERROR, said
    assert "acknowledged already" in said
    again = _json(setting.dsl, "shares", "status", share_id)
    assert again["acknowledged_at"] == acked["acknowledged_at"]


def test_overdue_lists_a_share_past_its_deadline_not_an_acknowledged_one(
    setting: Setting, tmp_path: Path
) -> None:
    status, _, said = _cli(setting.dsl, "shares", "overdue")
    assert status == 0 and "No overdue shares" in said, said
    assert _json(setting.dsl, "shares", "overdue") == []
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    by = f"{due:%Y-%m-%dT%H:%M:%S}"
    late = _share(setting, "--ack-by", by)
    done = _share(setting, "--ack-by", by)
    out = tmp_path / "got"
    _json(setting.agency, "shares", "get", done["share_id"], "-o", str(out))
    assert _json(setting.agency, "shares", "ack", done["share_id"], "-o", str(out))["status"] == (
        "acknowledged"
    )

    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.2)

    listed = _json(setting.dsl, "shares", "overdue")
    assert [s["share_id"] for s in listed] == [late["share_id"]]
    assert listed[0]["overdue"] is True
    status, _, said = _cli(setting.dsl, "shares", "overdue")
    assert status == 0 and late["share_id"] in said and done["share_id"] not in said
    said = _cli(setting.dsl, "shares", "status", late["share_id"])[2]
    assert ", overdue" in said and "overdue: not acknowledged in time" in said
    assert _json(setting.agency, "shares", "overdue") == []
    _json(setting.dsl, "shares", "revoke", late["share_id"], "--reason", "chased by phone")
    assert _json(setting.dsl, "shares", "overdue") == []
