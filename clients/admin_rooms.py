"""``carevault admin room …`` and ``carevault admin import FILE``: rooms, who is in them, and
bulk changes from a CSV file (docs/decisions/0018-rooms-and-imports.md).

A room change or an import that gives someone read rights is proposed, as one batch: another
admin approves it with ``carevault proposals approve``. Ending a membership happens at once.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from clients.approvals import report_proposed
from clients.output import EXIT_USAGE, emit_json, friendly, options, report, say, table
from clients.session import connect
from clients.times import TIME_FORMATS, TIME_HELP, shown, utc
from vault.client import Proposal
from vault.client.rooms import ImportDiff
from vault.errors import KeyServiceRequestError

room_app = typer.Typer(help="Rooms: staff attached with a role, children joining and leaving.")

FromOption = Annotated[
    datetime | None,
    typer.Option(
        "--from", formats=TIME_FORMATS, metavar="TIME", help=f"Start ({TIME_HELP}; default: now)."
    ),
]
UntilOption = Annotated[
    datetime | None,
    typer.Option(
        "--until",
        formats=TIME_FORMATS,
        metavar="TIME",
        help=f"End ({TIME_HELP}; default: until ended).",
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the diff; change nothing.")]


def register(admin: typer.Typer) -> None:
    """Mount ``room`` and ``import`` on ``carevault admin``."""
    admin.add_typer(room_app, name="room")
    admin.command("import")(import_file)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


@room_app.command("add")
@friendly
def room_add(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Its name.")]) -> None:
    """Add a room (names are unique; CSV files name rooms by them)."""
    made = connect(ctx).create_room(name)
    report(ctx, {"room_id": made.room_id, "name": made.name}, f"Added room {name}: {made.room_id}")


@room_app.command("list")
@friendly
def room_list(ctx: typer.Context) -> None:
    """Every room, with how many staff and children are in it now."""
    found = connect(ctx).rooms()
    if options(ctx).json:
        emit_json(found)
        return
    table(
        "Rooms",
        ["room", "room id", "staff now", "children now"],
        [(r.name, r.room_id, r.staff_now, r.children_now) for r in found],
    )


@room_app.command("show")
@friendly
def room_show(ctx: typer.Context, room: Annotated[str, typer.Argument(help="Id or name.")]) -> None:
    """A room's current and scheduled memberships."""
    detail = connect(ctx).room(room)
    if options(ctx).json:
        emit_json(detail)
        return
    table(
        f"{detail.room.name} ({detail.room.room_id})",
        ["kind", "person", "role", "from", "until", "membership id"],
        [
            (
                m.kind,
                m.person_id,
                m.role or "",
                shown(m.valid_from),
                shown(m.valid_to) if m.valid_to else "",
                m.membership_id,
            )
            for m in detail.memberships
        ],
    )


@room_app.command("staff")
@friendly
def room_staff(
    ctx: typer.Context,
    room_id: Annotated[str, typer.Argument(help="The room's id.")],
    staff_id: Annotated[str, typer.Argument(help="The member of staff.")],
    role: Annotated[str, typer.Option(help="educator, manager or dsl.")] = "educator",
    valid_from: FromOption = None,
    valid_until: UntilOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Attach a member of staff to a room; proposed when the room has children then."""
    done = connect(ctx).room_add_staff(
        room_id,
        staff_id,
        role=role,
        valid_from=_utc(valid_from),
        valid_to=_utc(valid_until),
        dry_run=dry_run,
    )
    _answer(ctx, done)


@room_app.command("child")
@friendly
def room_child(
    ctx: typer.Context,
    room_id: Annotated[str, typer.Argument(help="The room's id.")],
    child_id: Annotated[str, typer.Argument(help="The child.")],
    valid_from: FromOption = None,
    valid_until: UntilOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """A child joins a room (leaving any other room that day); proposed when the room has
    staff then."""
    done = connect(ctx).room_add_child(
        room_id, child_id, valid_from=_utc(valid_from), valid_to=_utc(valid_until), dry_run=dry_run
    )
    _answer(ctx, done)


@room_app.command("end")
@friendly
def room_end(
    ctx: typer.Context,
    membership_id: Annotated[str, typer.Argument(help="The membership (see `room show`).")],
    at: Annotated[
        datetime | None,
        typer.Option(
            formats=TIME_FORMATS, metavar="TIME", help=f"When ({TIME_HELP}; default: now)."
        ),
    ] = None,
) -> None:
    """End a staff or child membership now or on a date; never waits for anyone."""
    connect(ctx).end_room_membership(membership_id, at=_utc(at))
    report(ctx, {"membership_id": membership_id}, f"Ended {membership_id}.")


@friendly
def import_file(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="An assignments, staff or children CSV, or new people's.")
    ],
    dry_run: DryRunOption = False,
) -> None:
    """Import a CSV whose header names its kind:
    staff_id,child_id,role,valid_from,valid_to (assignments);
    staff_id,room,role,valid_from,valid_to (staff in rooms);
    child_id,room,valid_from,valid_to (children in rooms);
    name,date_of_birth,left_on,room,valid_from (new children);
    name,roles,room,role,valid_from (new staff: their first enrolment codes go to the admin
    who approves the import).
    Every row is checked first; all apply or none. One that gives read rights is proposed as
    one batch for another admin to approve."""
    text = file.read_text(encoding="utf-8")
    try:
        done = connect(ctx).import_csv(text, dry_run=dry_run)
    except KeyServiceRequestError as refused:
        errors = refused.problem.get("errors")
        if refused.status != 422 or not isinstance(errors, list):
            raise
        if options(ctx).json:
            emit_json({"error": str(refused), "errors": errors})
        else:
            table(
                f"{file.name}: nothing was imported",
                ["line", "problem", "reason"],
                [(e.get("line"), e.get("code"), e.get("reason")) for e in errors],
            )
        raise typer.Exit(EXIT_USAGE) from None
    _answer(ctx, done)


def _answer(ctx: typer.Context, done: ImportDiff | Proposal) -> None:
    if isinstance(done, Proposal):
        counts = done.payload.get("counts")
        if not options(ctx).json and isinstance(counts, dict):
            say(", ".join(f"{v} {k}" for k, v in counts.items()))
        report_proposed(ctx, done)
        return
    if options(ctx).json:
        emit_json(done)
        return
    named = {p.person_id: p.display_name for p in done.people} if done.dry_run else {}
    if done.people:
        table(
            f"{done.kind}: {len(done.people)} to create"
            + (" (ids given on approval)" if done.dry_run else ""),
            ["line", "person id", "name", "roles", "born", "left"],
            [
                (
                    p.line,
                    "" if done.dry_run else p.person_id,
                    p.display_name,
                    " ".join(p.roles),
                    p.date_of_birth or "",
                    p.left_on or "",
                )
                for p in done.people
            ],
        )
    table(
        f"{done.kind}: {', '.join(f'{v} {k}' for k, v in done.counts.items())}",
        ["line", "change", "person", "room or child", "role", "from", "until"],
        [
            (
                c.line,
                c.op,
                # A dry run's new people have no ids yet: their names instead.
                named.get(c.person_id, c.person_id),
                c.target_id,
                c.role or "",
                shown(c.valid_from),
                shown(c.valid_to) if c.valid_to else "",
            )
            for c in done.changes
        ],
    )
    if done.dry_run:
        wait = " It gives read rights: it will wait for approval." if done.gives_rights else ""
        say(f"Dry run: nothing changed.{wait}")
    else:
        say("Applied.")
