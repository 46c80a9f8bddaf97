"""``make demo``: a small nursery on a real key service, in plain words.

It starts the key service on its embedded default in a temporary directory, sets up two
rooms, children, educators, a designated safeguarding lead (DSL), guardians, a manager and an
admin through the real enrolment flow, adds real encrypted records, and then checks who can
read what.

It shows the two-person rule: the admin only *proposes* who may read what; the nursery
manager, whose enrolment code was issued at the host so the admin never saw it, approves. The
manager's own first assignments are approved at the host, and the admin's attempt to approve
its own proposal is refused. Then a social worker is invited by a share made on a parent's
written consent, enrols, downloads and acknowledges, and is refused once the consent is
withdrawn. Every expected "allowed" and "refused" is checked; if any does
not hold, the demo exits non-zero. The key service is always stopped and the directory
removed at the end.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from clients.demo_files import write_note, write_photo
from clients.localservice import LocalService, LocalServiceError, local_keyservice
from vault.client import Client, Proposal
from vault.errors import KeyServiceRequestError, NotFound, RecordUnavailable, VaultError
from vault.format import VaultFormatError

console = Console(highlight=False)

OBSERVATION = (
    "Observation, Robins room.\n"
    "Ava built a tower of twelve blocks today and counted them aloud to Noah.\n"
)
SAFEGUARDING = (
    "Safeguarding note (DSL only).\n"
    "Ava's aunt collected her today without being on the collection list.\n"
)
LEO_NOTE = "Observation, Wrens room.\nLeo painted a boat and told us about the sea.\n"


@dataclass
class Tally:
    """The checks the demo makes, and whether each came out as expected."""

    failures: list[str] = field(default_factory=list)
    count: int = 0

    def expect(
        self,
        what: str,
        allowed: bool,
        attempt: Callable[[], object],
        refusal: type[VaultError] = RecordUnavailable,
    ) -> object:
        """Run ``attempt``; it should succeed if ``allowed`` and be refused (``refusal``)
        otherwise."""
        self.count += 1
        try:
            result = attempt()
        except refusal:
            if allowed:
                self._fail(f"{what}: was refused, but should have been allowed")
            else:
                console.print(f"  [green]✔[/] {what}: [bold]refused[/], as the rules say.")
            return None
        if allowed:
            console.print(f"  [green]✔[/] {what}: [bold]allowed[/].")
        else:
            self._fail(f"{what}: was allowed, but should have been refused")
        return result

    def check(self, what: str, holds: bool) -> None:
        self.count += 1
        if holds:
            console.print(f"  [green]✔[/] {what}.")
        else:
            self._fail(what)

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        console.print(f"  [bold red]✘ {message}[/]")


class Nursery:
    """The people of the demo nursery, each with their own enrolled device."""

    def __init__(self, service: LocalService) -> None:
        self.service = service
        self.admin, _ = Client.enrol(service.base_url, service.admin_code, "office PC")
        self.people: dict[str, Client] = {}
        self.ids: dict[str, str] = {}

    def person(
        self, name: str, *, kind: str, roles: tuple[str, ...] = (), code_at_host: bool = False
    ) -> Client:
        """Add a person and enrol their device, with a code from the admin or, when
        ``code_at_host``, from the host, so that the admin never sees it."""
        principal = self.admin.create_principal(kind=kind, display_name=name, roles=roles)
        if code_at_host:
            code = self.service.code_at_host(principal)
        else:
            issued = self.admin.enrolment_code(principal)
            if isinstance(issued, Proposal):
                raise VaultError(f"{name} already had a device or read rights")
            code = issued.code
        client, _identity = Client.enrol(self.service.base_url, code, f"{name}'s device")
        self.people[name] = client
        self.ids[name] = principal
        return client

    def close(self) -> None:
        for client in [self.admin, *self.people.values()]:
            client.close()


def _read(client: Client, record_id: str, out: Path) -> bytes:
    path = client.get(record_id, dst=out)
    data = path.read_bytes()
    path.unlink()
    return data


def run(workdir: Path) -> Tally:
    tally = Tally()
    files = workdir / "files"
    files.mkdir()
    out = workdir / "downloads"
    out.mkdir()
    console.print("Starting a key service on the embedded default (SQLite, local blobs) …")
    with local_keyservice(workdir / "service") as service:
        console.print(f"  key service at {service.base_url}; first admin bootstrapped.\n")
        nursery = Nursery(service)
        try:
            _scenario(nursery, tally, files, out)
        finally:
            nursery.close()
    console.print("\nThe key service has been stopped.")
    return tally


def _scenario(nursery: Nursery, tally: Tally, files: Path, out: Path) -> None:
    admin = nursery.admin
    console.rule("Setting up Sunflower Nursery (every person enrols their own device)")
    nursery.person("Maya", kind="staff", roles=("manager",), code_at_host=True)
    console.print(
        "  Maya, the nursery manager, got her enrolment code at the host\n"
        "  ([bold]carevault-keyservice enrolment-code[/]): the admin never saw it, so Maya\n"
        "  is a second person, independent of the admin."
    )
    amira = nursery.person("Amira", kind="staff", roles=("educator",))
    ben = nursery.person("Ben", kind="staff", roles=("educator",))
    dana = nursery.person("Dana", kind="staff", roles=("dsl",))
    grace = nursery.person("Grace", kind="guardian")
    henry = nursery.person("Henry", kind="guardian")
    console.print("  Everyone else got a one-time code from the admin and enrolled their device.")
    ava = admin.create_child(display_name="Ava", room="Robins")
    noah = admin.create_child(display_name="Noah", room="Robins")
    leo = admin.create_child(display_name="Leo", room="Wrens")
    _two_person_rule(nursery, tally, ava=ava, noah=noah, leo=leo)
    people = Table(show_header=True, header_style="bold")
    for column in ("who", "what", "children"):
        people.add_column(column)
    people.add_row("Maya", "nursery manager; approves the admin's proposals", "Ava, Noah, Leo")
    people.add_row("Amira", "educator, Robins room", "Ava, Noah")
    people.add_row("Ben", "educator, Wrens room", "Leo")
    people.add_row("Dana", "designated safeguarding lead", "Ava, Noah, Leo")
    people.add_row("Grace", "Ava's mother", "Ava")
    people.add_row("Henry", "Leo's father", "Leo")
    people.add_row("Admin", "runs the system", "none (admin rights never give read rights)")
    console.print(people)

    console.rule("Adding records (encrypted on the device that adds them)")
    ids = nursery.ids
    note = write_note(files / "ava-blocks.txt", OBSERVATION)
    observation = amira.put(
        child_ids=[ava], category="observation", path=note, content_type="text/plain"
    )
    photo_path = write_photo(files / "robins-tower.png")
    photo = amira.put(
        child_ids=[ava, noah], category="photo", path=photo_path, content_type="image/png"
    )
    concern = dana.put(
        child_ids=[ava],
        category="safeguarding",
        path=write_note(files / "collection-concern.txt", SAFEGUARDING),
        content_type="text/plain",
    )
    leo_note = ben.put(
        child_ids=[leo],
        category="observation",
        path=write_note(files / "leo-boat.txt", LEO_NOTE),
        content_type="text/plain",
    )
    size_mb = photo_path.stat().st_size / 1e6
    console.print(f"  Amira added an observation of Ava and a {size_mb:.1f} MB group photo.")
    console.print("  Dana added a safeguarding note about Ava; Ben an observation of Leo.\n")

    console.rule("Who can read what")
    text = tally.expect(
        "Amira (Ava's educator) reads Ava's observation",
        True,
        lambda: _read(amira, observation.record_id, out),
    )
    tally.check("what Amira read is exactly what she wrote", text == OBSERVATION.encode("utf-8"))
    picture = tally.expect(
        "Amira opens the group photo of Ava and Noah",
        True,
        lambda: _read(amira, photo.record_id, out),
    )
    tally.check(
        "the photo arrived intact (same SHA-256 as the original)",
        isinstance(picture, bytes)
        and hashlib.sha256(picture).digest() == hashlib.sha256(photo_path.read_bytes()).digest(),
    )
    tally.expect(
        "Ben (Wrens room) tries to read Ava's observation",
        False,
        lambda: _read(ben, observation.record_id, out),
    )
    tally.check(
        "Ben's list of children shows only Leo, not the Robins room",
        [c.display_name for c in ben.children()] == ["Leo"],
    )
    tally.check(
        "Ben sees none of Ava's records when he asks for her list",
        _quiet_list(ben, ava) == [],
    )
    tally.expect(
        "Grace (Ava's mother) reads Ava's observation",
        True,
        lambda: _read(grace, observation.record_id, out),
    )
    tally.expect(
        "Grace tries to read Leo's observation (not her child)",
        False,
        lambda: _read(grace, leo_note.record_id, out),
    )
    tally.expect(
        "Henry (Leo's father) reads Leo's observation",
        True,
        lambda: _read(henry, leo_note.record_id, out),
    )
    tally.expect(
        "Dana (DSL) reads the safeguarding note", True, lambda: _read(dana, concern.record_id, out)
    )
    tally.expect(
        "Amira (educator, not DSL) tries to read the safeguarding note",
        False,
        lambda: _read(amira, concern.record_id, out),
    )
    tally.expect(
        "Grace tries to read the safeguarding note about her own child",
        False,
        lambda: _read(grace, concern.record_id, out),
    )
    tally.expect(
        "The admin tries to read Ava's observation",
        False,
        lambda: _read(admin, observation.record_id, out),
    )
    tally.check(
        "nothing refused was written to disk",
        list(out.iterdir()) == [],
    )

    console.rule("Ava's disclosure log, as Grace sees it")
    names = {principal: name for name, principal in ids.items()}
    log = grace.disclosures(ava)
    view = Table(show_header=True, header_style="bold")
    for column in ("when (UTC)", "given to", "record", "basis"):
        view.add_column(column)
    titles = {
        observation.record_id: "observation",
        photo.record_id: "group photo",
        concern.record_id: "safeguarding note",
    }
    for entry in log:
        view.add_row(
            f"{entry.at:%H:%M:%S}",
            names.get(entry.principal_id, entry.principal_id[:8]),
            titles.get(entry.record_id or "", entry.record_id or ""),
            entry.basis or "",
        )
    console.print(view)
    released_to = {names.get(e.principal_id) for e in log if e.record_id == observation.record_id}
    tally.check(
        "the log names Amira and Grace for the observation, and not Ben or the admin",
        {"Amira", "Grace"} <= released_to and not released_to & {"Ben", None},
    )
    _social_worker(
        nursery,
        tally,
        ava=ava,
        observation=observation.record_id,
        concern=concern.record_id,
        workdir=out.parent,
    )


def _social_worker(
    nursery: Nursery, tally: Tally, *, ava: str, observation: str, concern: str, workdir: Path
) -> None:
    """An outside recipient: invited by a share on Grace's written consent, enrols, downloads,
    acknowledges, and is refused once Grace withdraws the consent."""
    admin, grace, dana = nursery.admin, nursery.people["Grace"], nursery.people["Dana"]
    service = nursery.service
    console.rule("Sharing with a social worker, on Grace's written consent")
    sam_id = admin.create_principal(
        kind="external", display_name="Sam", organisation="County Early Help Team"
    )
    nursery.ids["Sam"] = sam_id
    consent = grace.record_consent(
        child_id=ava,
        given_by=nursery.ids["Grace"],
        recipient_id=sam_id,
        categories=["observation"],
        purpose="early help assessment",
    )
    if isinstance(consent, Proposal):
        raise VaultError("a guardian's own consent should take effect at once")
    console.print(
        "  The admin added Sam, a social worker of the County Early Help Team\n"
        "  (no device, no rights). Grace gave her written consent: Ava's observations,\n"
        "  to Sam, for an early help assessment."
    )
    tally.expect(
        "Dana tries to share the safeguarding note under that consent",
        False,
        lambda: dana.create_share(
            recipient_id=sam_id,
            basis="consent",
            basis_id=consent,
            purpose="early help assessment",
            record_ids=[concern],
        ),
        refusal=KeyServiceRequestError,
    )
    share = dana.create_share(
        recipient_id=sam_id,
        basis="consent",
        basis_id=consent,
        purpose="early help assessment",
        record_ids=[observation],
        download_cap=3,
        ack_due=datetime.now(UTC) + timedelta(days=3),
    )
    invitation = share.invitation
    tally.check(
        "Dana shared Ava's observation with Sam: 14 days, 3 downloads, receipt due\n"
        "    in 3 days; the answer carries a one-time invitation code for Sam",
        invitation is not None and share.status == "sent",
    )
    if invitation is None:
        return
    sam, _identity = Client.enrol(service.base_url, invitation.code, "Sam's laptop")
    nursery.people["Sam"] = sam
    console.print("  Sam enrolled a laptop with it (a code, never a link to content).")
    tally.expect(
        "Someone tries the same invitation code again",
        False,
        lambda: Client.enrol(service.base_url, invitation.code, "another laptop"),
        refusal=VaultError,
    )
    tally.check(
        "Sam's list of shares shows the one from Dana, until its end",
        [s.share_id for s in sam.shares()] == [share.share_id],
    )
    received = workdir / "sam-received"
    got = sam.get_share(share.share_id, out_dir=received)
    tally.check(
        "Sam downloaded the share: verified and decrypted on the laptop",
        [item.path.read_bytes() for item in got.fetched] == [OBSERVATION.encode("utf-8")],
    )
    again = sam.get_share(share.share_id, out_dir=received)
    tally.check(
        "a second run fetches nothing: the file is already here and still verifies",
        not again.fetched and len(again.skipped) == 1,
    )
    sam.ack_share(share.share_id, out_dir=received)
    tally.check(
        "Sam signed a receipt for what arrived; Dana sees the share as acknowledged",
        dana.share(share.share_id).status == "acknowledged",
    )
    grace.withdraw_consent(consent, reason="the assessment is finished")
    console.print("  Grace withdrew her consent.")
    tally.expect(
        "Sam asks for the observation again after the withdrawal",
        False,
        lambda: _read(sam, observation, workdir / "downloads"),
    )
    told = [e for e in grace.disclosures(ava) if e.principal_id == sam_id]
    tally.check(
        "Grace's view of Ava's disclosure log shows the share and Sam's download",
        {e.decision for e in told} == {"shared", "granted"},
    )
    shutil.rmtree(received)


def _two_person_rule(nursery: Nursery, tally: Tally, *, ava: str, noah: str, leo: str) -> None:
    """The admin proposes who may read what; Maya, independent of the admin, approves."""
    admin, ids, service = nursery.admin, nursery.ids, nursery.service
    amira, maya = nursery.people["Amira"], nursery.people["Maya"]
    console.rule("Two people for every change that gives read rights")
    console.print(
        "  The admin proposes Maya as manager of the three children. Maya may not approve\n"
        "  her own assignment and there is no other admin yet, so whoever runs the server\n"
        "  approves these at the host ([bold]carevault-keyservice proposals approve[/])."
    )
    for child in (ava, noah, leo):
        proposal = admin.assign(staff_id=ids["Maya"], child_id=child, role="manager")
        service.approve_at_host(proposal.proposal_id)
    proposed = [
        *(admin.assign(staff_id=ids["Amira"], child_id=c, role="educator") for c in (ava, noah)),
        admin.assign(staff_id=ids["Ben"], child_id=leo, role="educator"),
        *(admin.assign(staff_id=ids["Dana"], child_id=c, role="dsl") for c in (ava, noah, leo)),
        admin.add_guardian(guardian_id=ids["Grace"], child_id=ava),
        admin.add_guardian(guardian_id=ids["Henry"], child_id=leo),
    ]
    console.print(
        f"  The admin proposes {len(proposed)} more: the educators' and the DSL's assignments,"
        "\n  and two guardians. None takes effect until a second person approves it."
    )
    tally.check(
        "until someone approves, Amira has no children to see",
        amira.children() == [],
    )
    tally.expect(
        "The admin tries to approve its own proposal for Amira",
        False,
        lambda: admin.approve(proposed[0].proposal_id),
        refusal=NotFound,
    )
    waiting = {p.proposal_id for p in maya.proposals() if p.pending}
    tally.check(
        f"Maya sees the {len(proposed)} proposals waiting for her",
        {p.proposal_id for p in proposed} <= waiting,
    )
    approved = [maya.approve(p.proposal_id) for p in proposed]
    tally.check(
        "Maya approved them all, and each made its assignment or guardianship",
        all(p.state == "approved" and p.result_id for p in approved),
    )
    tally.check(
        "now Amira sees Ava and Noah",
        sorted(c.display_name for c in amira.children()) == ["Ava", "Noah"],
    )


def _quiet_list(client: Client, child_id: str) -> list[object]:
    try:
        return list(client.records(child_id))
    except VaultError:
        return []


def main() -> int:
    console.print(Panel.fit("Carevault demo: Sunflower Nursery", style="bold"))
    workdir = Path(tempfile.mkdtemp(prefix="carevault-demo-"))
    try:
        tally = run(workdir)
    except (LocalServiceError, VaultError, VaultFormatError, OSError) as exc:
        console.print(f"[bold red]The demo could not run:[/] {exc}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if tally.failures:
        console.print(f"\n[bold red]{len(tally.failures)} of {tally.count} checks failed.[/]")
        return 1
    console.print(f"\n[bold green]All {tally.count} checks held.[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
