"""``carevault``: the command line for staff, guardians, agencies and admins.

carevault enroll --url https://vault.example.org --code K7Q2-...
carevault children
carevault records put --child <id> --category observation note.txt
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from clients import admin, approvals, devices, records, relationships, shares
from clients.output import (
    EXIT_CODES_HELP,
    Options,
    emit_json,
    friendly,
    options,
    say,
    table,
)
from clients.profile import HOME_ENV, Profile, default_home, passphrase
from clients.session import connect, profile
from vault.client import Client
from vault.errors import KeyFileError

app = typer.Typer(
    help=(
        "Carevault: read and add children's records, encrypted on this computer.\n\n"
        + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(records.app, name="records")
app.add_typer(relationships.consent_app, name="consent")
app.add_typer(relationships.court_order_app, name="court-order")
app.add_typer(relationships.guardianship_app, name="guardianship")
app.add_typer(shares.app, name="shares")
app.add_typer(approvals.app, name="proposals")
app.add_typer(devices.app, name="devices")
app.command("notifications")(devices.notifications)
app.add_typer(admin.app, name="admin")


@app.callback()
def main_options(
    ctx: typer.Context,
    profile_dir: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            envvar=HOME_ENV,
            help="Profile directory holding this device's encrypted keys (default: ~/.carevault).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
    ] = False,
) -> None:
    ctx.obj = Options(profile_dir=profile_dir or default_home(), json=as_json)


@app.command()
@friendly
def enroll(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="The key service address your administrator gave.")],
    code: Annotated[str, typer.Option(help="Your one-time enrolment code.")],
    device_name: Annotated[
        str | None, typer.Option(help="A name for this computer (default: its host name).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace a profile that is already enrolled here.")
    ] = False,
) -> None:
    """Enrol this computer with a one-time code. Its keys are created here and stay here."""
    chosen: Profile = profile(ctx)
    if chosen.exists() and not force:
        raise KeyFileError(
            f"A device is already enrolled in {chosen.directory}. Use another --profile, "
            "or --force to replace it."
        )
    secret = passphrase(confirm=True)
    client, identity = Client.enrol(url, code, device_name or socket.gethostname())
    client.close()
    chosen.store(identity, secret)
    if options(ctx).json:
        emit_json(
            {
                "principal_id": identity.principal_id,
                "device_id": identity.device_id,
                "profile": str(chosen.directory),
            }
        )
    else:
        say(
            f"This computer is enrolled. Its keys are in {chosen.key_file}, "
            "locked by your passphrase."
        )


@app.command()
@friendly
def whoami(ctx: typer.Context) -> None:
    """Who this computer acts as."""
    me = connect(ctx).whoami()
    if options(ctx).json:
        emit_json(me)
        return
    roles = ", ".join(me.roles) or "none"
    say(f"{me.display_name} ({me.kind}; roles: {roles})")
    say(f"principal {me.principal_id}, device {me.device_id}")


@app.command()
@friendly
def children(ctx: typer.Context) -> None:
    """The children you work with or care for."""
    found = connect(ctx).children()
    if options(ctx).json:
        emit_json(found)
        return
    table(
        "Your children",
        ["child id", "name", "room", "relation"],
        [(c.child_id, c.display_name, c.room, c.relation) for c in found],
    )


@app.command()
@friendly
def disclosures(
    ctx: typer.Context, child_id: Annotated[str, typer.Argument(help="The child's id.")]
) -> None:
    """A child's disclosure log: who was given which record, when and on what basis."""
    entries = connect(ctx).disclosures(child_id)
    if options(ctx).json:
        emit_json(entries)
        return
    table(
        "Disclosure log",
        ["when", "decision", "who", "record", "basis"],
        [
            (e.at, e.decision, e.principal_name or e.principal_id, e.record_id, e.basis)
            for e in entries
        ],
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
