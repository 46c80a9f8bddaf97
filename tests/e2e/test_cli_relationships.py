"""``carevault consent …``, ``carevault court-order …`` and ``carevault guardianship …`` against
a real key service: who may record them, what is refused before any request, what waits for a
second person's approval, and what a recorded (or ended) order, consent or guardianship
changes."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import clients.relationships
from clients.cli import app
from clients.output import EXIT_DENIED, EXIT_USAGE
from tests.e2e.world import World
from vault.client import Client, Proposal
from vault.format import Category

pytestmark = pytest.mark.integration

PASSPHRASE = {"CAREVAULT_PASSPHRASE": "cli relationships passphrase"}
runner = CliRunner()
FRAME = str.maketrans(dict.fromkeys("│╭╮╰╯─", " "))
PROPOSED = re.compile(r"waiting for approval: .* \(proposal ([0-9a-f]{32})\)")


def _cli(profile: Path, *args: str) -> tuple[int, str, str]:
    """Exit code, standard output, and everything printed (errors included) as one line of
    words, without the frame Click draws around a usage error."""
    result = runner.invoke(app, ["--profile", str(profile), *args], env=PASSPHRASE)
    assert "Traceback" not in result.output
    words = result.output.translate(FRAME).split()
    return result.exit_code, result.stdout, " ".join(words)


def _enrol(world: World, profile: Path, name: str, *, kind: str, roles: tuple[str, ...]) -> Path:
    code = world.code_for(name, kind=kind, roles=roles)
    status, _, said = _cli(profile, "enroll", "--url", world.service.base_url, "--code", code)
    assert status == 0, said
    return profile


def _outsider(world: World, name: str) -> Client:
    """An outside recipient (a therapist, a school nurse), enrolled with the SDK."""
    principal = world.admin.create_principal(
        kind="external", display_name=name, organisation="Riverside Health"
    )
    world.ids[name] = principal
    issued = world.admin.enrolment_code(principal)
    assert not isinstance(issued, Proposal)
    client, _identity = Client.enrol(world.service.base_url, issued.code, f"{name}'s laptop")
    world.people[name] = client
    return client


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _order_window() -> list[str]:
    now = datetime.now(UTC)
    return ["--from", _time(now - timedelta(hours=1)), "--until", _time(now + timedelta(days=30))]


def _approved(world: World, said: str) -> str:
    """The id of what the proposal a command announced made, once the second admin approved."""
    found = PROPOSED.search(said)
    assert found is not None, said
    return world.approved(world.approver.proposal(found.group(1)))


@pytest.fixture(scope="module")
def dsl(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI profile of Ava's designated safeguarding lead, one per nursery."""
    profile = _enrol(world, tmp_path_factory.mktemp("dsl"), "dee", kind="staff", roles=("dsl",))
    world.assign("dee", world.children["ava"], role="dsl")
    return profile


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every time the commands open a key service client."""
    opened: list[str] = []
    real = clients.relationships.connect

    def counting(ctx: typer.Context) -> Client:
        opened.append("connect")
        return real(ctx)

    monkeypatch.setattr(clients.relationships, "connect", counting)
    yield opened


def test_an_educator_is_refused_a_court_order(world: World, tmp_path: Path) -> None:
    educator = _enrol(world, tmp_path / "ed", "eli", kind="staff", roles=("educator",))
    ava, grace = world.children["ava"], world.ids["grace"]
    world.assign("eli", ava)

    status, out, said = _cli(
        educator,
        "court-order",
        "add",
        "--child",
        ava,
        "--effect",
        "restrict-guardian",
        "--subject",
        grace,
        "--category",
        "observation",
        "--reference",
        "FC-2026-0001",
        *_order_window(),
    )

    assert status == EXIT_DENIED, said
    assert out == ""
    assert "no child with this id for which you may record this" in said
    assert "FC-2026-0001" not in said


@pytest.mark.parametrize(
    ("argv", "told"),
    [
        pytest.param(
            ["court-order", "add", "--effect", "restrict-guardian", "--category", "gossip"],
            "'gossip' is not one of 'observation', 'incident', 'medical', 'photo', "
            "'consent-form', 'correspondence', 'safeguarding'",
            id="court-order-unknown-category",
        ),
        pytest.param(
            ["court-order", "add", "--effect", "banish", "--category", "medical"],
            "'banish' is not one of 'restrict-guardian', 'disclose'",
            id="court-order-unknown-effect",
        ),
        pytest.param(
            ["court-order", "add", "--effect", "restrict_guardian", "--category", "medical"],
            "'restrict_guardian' is not one of 'restrict-guardian', 'disclose'",
            id="court-order-api-spelling-of-effect",
        ),
        pytest.param(
            [
                "consent",
                "add",
                "--category",
                "observation",
                "--category",
                "gossip",
                "--given-by",
                "b" * 32,
                "--recipient",
                "c" * 32,
                "--purpose",
                "referral",
            ],
            "'gossip' is not one of 'observation', 'incident', 'medical', 'photo', "
            "'consent-form', 'correspondence', 'safeguarding'",
            id="consent-unknown-category",
        ),
    ],
)
def test_unknown_values_are_refused_before_any_request(
    world: World, dsl: Path, connections: list[str], argv: list[str], told: str
) -> None:
    command, rest = argv[:2], argv[2:]
    if command[0] == "court-order":
        rest += ["--subject", world.ids["grace"], "--reference", "FC-1", *_order_window()]
    status, out, said = _cli(dsl, *command, "--child", world.children["ava"], *rest)

    assert status == EXIT_USAGE, said
    assert out == ""
    assert told in said
    assert connections == [], "no key service client may be opened for a usage error"


def test_an_order_that_ends_before_it_starts_is_refused_before_any_request(
    world: World, dsl: Path, connections: list[str]
) -> None:
    status, _, said = _cli(
        dsl,
        "court-order",
        "add",
        "--child",
        world.children["ava"],
        "--effect",
        "disclose",
        "--subject",
        world.ids["grace"],
        "--category",
        "medical",
        "--reference",
        "FC-2",
        "--from",
        "2026-09-01",
        "--until",
        "2026-08-01",
    )
    assert status == EXIT_USAGE, said
    assert "--until (2026-08-01 00:00 UTC) must be after --from (2026-09-01 00:00 UTC)" in said
    assert connections == []


def test_withdrawing_an_unknown_consent_is_refused(dsl: Path) -> None:
    unknown = secrets.token_hex(16)
    status, out, said = _cli(dsl, "consent", "withdraw", unknown)
    assert status == EXIT_DENIED, said
    assert out == ""
    assert "no current consent with this id that you may withdraw" in said

    result = runner.invoke(
        app, ["--profile", str(dsl), "--json", "consent", "withdraw", unknown], env=PASSPHRASE
    )
    assert result.exit_code == EXIT_DENIED
    assert result.stdout == ""
    assert json.loads(result.stderr)["exit_code"] == EXIT_DENIED


def test_a_court_order_stops_a_guardian_reading_that_category(
    world: World, dsl: Path, tmp_path: Path
) -> None:
    mia = world.admin.create_child(display_name="Mia", room="Owls")
    world.assign("dee", mia, role="dsl")
    hana = _enrol(world, tmp_path / "hana", "hana", kind="guardian", roles=())
    world.add_guardian("hana", mia)

    added = {}
    for category in (Category.MEDICAL, Category.OBSERVATION):
        note = tmp_path / f"{category}.txt"
        note.write_text(f"Mia's {category} note.\n")
        status, out, said = _cli(
            dsl, "--json", "records", "put", str(note), "--child", mia, "--category", category
        )
        assert status == 0, said
        added[category] = json.loads(out)["record_id"]

    def hana_reads(category: Category) -> tuple[int, Path]:
        target = tmp_path / "hana-reads" / f"{category}-{secrets.token_hex(4)}.txt"
        target.parent.mkdir(exist_ok=True)
        status, _, _ = _cli(hana, "records", "get", added[category], "-o", str(target))
        return status, target

    assert hana_reads(Category.MEDICAL)[0] == 0, "before the order, the guardian may read it"

    status, out, said = _cli(
        dsl,
        "court-order",
        "add",
        "--child",
        mia,
        "--effect",
        "restrict-guardian",
        "--subject",
        world.ids["hana"],
        "--category",
        "medical",
        "--reference",
        "FC-2026-0147 (family court)",
        *_order_window(),
    )
    assert status == 0, said
    assert said.startswith("Court order recorded: "), "restricting a guardian needs no approval"
    assert "FC-2026-0147" not in said
    order_id = said.split()[3]

    status, target = hana_reads(Category.MEDICAL)
    assert status == EXIT_DENIED
    assert not target.exists()
    status, target = hana_reads(Category.OBSERVATION)
    assert status == 0
    assert target.read_text() == "Mia's observation note.\n"

    status, out, said = _cli(dsl, "court-order", "end", order_id, "--reason", "order discharged")
    assert status == 0, said
    assert "waiting for approval" in said, "ending it gives the guardian rights back"
    assert hana_reads(Category.MEDICAL)[0] == EXIT_DENIED, "not until a second person approves"
    assert _approved(world, said) == order_id
    assert hana_reads(Category.MEDICAL)[0] == 0, "the ended order no longer keeps her out"
    status, _, said = _cli(dsl, "court-order", "end", order_id, "--reason", "again")
    assert status == EXIT_DENIED, "an ended order cannot be ended again"


def test_consent_add_and_withdraw_round_trip_in_json(world: World, dsl: Path) -> None:
    ava, grace = world.children["ava"], world.ids["grace"]
    therapist = _outsider(world, "tess")

    def therapist_sees_ava() -> bool:
        return ava in {child.child_id for child in therapist.children()}

    assert not therapist_sees_ava()

    status, out, said = _cli(
        dsl,
        "--json",
        "consent",
        "add",
        "--child",
        ava,
        "--given-by",
        grace,
        "--recipient",
        world.ids["tess"],
        "--category",
        "observation",
        "--category",
        "photo",
        "--purpose",
        "Speech and language referral",
    )
    assert status == 0, said
    answer = json.loads(out)
    assert set(answer) == {
        "proposal_id",
        "action",
        "state",
        "child_id",
        "beneficiary_id",
        "proposed_at",
        "expires_at",
    }
    assert (answer["action"], answer["state"]) == ("consent.create", "pending")
    assert (answer["child_id"], answer["beneficiary_id"]) == (ava, world.ids["tess"])
    assert "Speech" not in out, "the purpose is sent, never printed"
    assert not therapist_sees_ava(), "nothing changes until a second person approves"
    consent_id = world.approved(world.approver.proposal(answer["proposal_id"]))
    assert therapist_sees_ava(), "the consent gives the recipient a relationship with the child"

    status, out, said = _cli(
        dsl, "--json", "consent", "withdraw", consent_id, "--reason", "family asked"
    )
    assert status == 0, said
    assert json.loads(out) == {"consent_id": consent_id, "withdrawn": True}
    assert not therapist_sees_ava()

    status, _, said = _cli(dsl, "consent", "withdraw", consent_id)
    assert status == EXIT_DENIED, "a withdrawn consent cannot be withdrawn again"


def test_consent_add_tells_how_long_it_lasts(world: World, dsl: Path, tmp_path: Path) -> None:
    """A guardian's own consent is recorded at once, and says how long it lasts; the same
    consent recorded by the DSL is proposed, and says so."""
    ava = world.children["ava"]
    gwen = _enrol(world, tmp_path / "gwen", "gwen", kind="guardian", roles=())
    world.add_guardian("gwen", ava)
    _outsider(world, "sol")
    common = [
        "consent",
        "add",
        "--child",
        ava,
        "--given-by",
        world.ids["gwen"],
        "--recipient",
        world.ids["sol"],
        "--category",
        "medical",
        "--purpose",
        "Hospital outpatient appointment",
    ]

    status, _, said = _cli(gwen, *common)
    assert status == 0, said
    assert said.startswith("Consent recorded: ")
    assert said.endswith("(valid for one year from today, the key service's default)")
    assert "Hospital" not in said

    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
    status, _, said = _cli(gwen, *common, "--until", until.strftime("%Y-%m-%dT%H:%M"))
    assert status == 0, said
    assert said.endswith(f"(valid until {until:%Y-%m-%d %H:%M} UTC)")

    status, _, said = _cli(dsl, *common)
    assert status == 0, said
    assert said.startswith("Proposed, waiting for approval: record a consent (proposal ")
    assert "carevault proposals approve" in said
    assert "Hospital" not in said


def test_a_guardianship_ends_with_a_reason(world: World, dsl: Path, tmp_path: Path) -> None:
    ava = world.children["ava"]
    ivo = _enrol(world, tmp_path / "ivo", "ivo", kind="guardian", roles=())
    guardianship = world.add_guardian("ivo", ava)
    status, out, _ = _cli(ivo, "--json", "children")
    assert [c["child_id"] for c in json.loads(out)] == [ava]

    status, out, said = _cli(dsl, "--json", "guardianship", "end", guardianship)
    assert status == EXIT_USAGE, "a guardianship ends with a reason"
    status, out, said = _cli(
        dsl, "--json", "guardianship", "end", guardianship, "--reason", "residence order"
    )
    assert status == 0, said
    assert json.loads(out) == {"guardianship_id": guardianship, "ended": True}
    status, out, _ = _cli(ivo, "--json", "children")
    assert json.loads(out) == []
    status, _, said = _cli(dsl, "guardianship", "end", guardianship, "--reason", "again")
    assert status == EXIT_DENIED, said
    assert "no current guardianship with this id that you may end" in said
