"""``carevault admin …``: people, devices, children and who may see them. Admin rights never
give access to record content, and a change that gives someone read rights (an assignment, a
guardian, a new admin, a code for someone who already has a device) is only proposed here: a
second person approves it with ``carevault proposals approve``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from clients import admin_retention, admin_rooms
from clients.admin_rotation import register as register_rotation
from clients.approvals import report_proposed
from clients.output import emit_json, friendly, options, report, say, table
from clients.session import connect
from clients.times import TIME_FORMATS, TIME_HELP, shown, utc
from vault.client import Offboarded, Proposal

app = typer.Typer(help="Run a setting: people, children and relationships.", no_args_is_help=True)
principal_app = typer.Typer(help="People: staff, guardians and outside recipients.")
child_app = typer.Typer(help="Children.")
revoke_app = typer.Typer(help="Revoke a person or one device, at once.")
app.add_typer(principal_app, name="principal")
app.add_typer(child_app, name="child")
app.add_typer(revoke_app, name="revoke")
admin_retention.register(app)
register_rotation(app)


@principal_app.command("add")
@friendly
def principal_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Display name.")],
    kind: Annotated[str, typer.Option(help="staff, guardian or external.")] = "staff",
    role: Annotated[
        list[str] | None, typer.Option(help="Staff role: educator, manager, dsl, admin.")
    ] = None,
    organisation: Annotated[str | None, typer.Option(help="For outside recipients.")] = None,
) -> None:
    """Add a person. Then give them an enrolment code with `admin code`. A new admin (--role
    admin) is proposed: the person who approves it receives their code."""
    roles = role or []
    if "admin" in roles:
        if kind != "staff":
            raise typer.BadParameter("only staff hold roles", param_hint="'--kind'")
        others = [r for r in roles if r != "admin"]
        report_proposed(ctx, connect(ctx).propose_admin(display_name=name, roles=others))
        return
    principal_id = connect(ctx).create_principal(
        kind=kind, display_name=name, roles=roles, organisation=organisation
    )
    report(ctx, {"principal_id": principal_id}, f"Added {name}: {principal_id}")


@app.command("code")
@friendly
def code(
    ctx: typer.Context, principal_id: Annotated[str, typer.Argument(help="The person.")]
) -> None:
    """A one-time enrolment code (valid 24 hours) for a person's first device. For someone who
    already has a device or can read records, a proposal: whoever approves it gets the code."""
    issued = connect(ctx).enrolment_code(principal_id)
    if isinstance(issued, Proposal):
        report_proposed(ctx, issued)
        return
    report(
        ctx,
        {"code": issued.code, "expires_at": issued.expires_at},
        f"Enrolment code: {issued.code} (valid until {shown(issued.expires_at)})",
    )


@child_app.command("add")
@friendly
def child_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="The child's display name.")],
    room: Annotated[str | None, typer.Option(help="Room or group.")] = None,
) -> None:
    """Add a child."""
    child_id = connect(ctx).create_child(display_name=name, room=room)
    report(ctx, {"child_id": child_id}, f"Added {name}: {child_id}")


@app.command("assign")
@friendly
def assign(
    ctx: typer.Context,
    staff: Annotated[str, typer.Option(help="The member of staff.")],
    child: Annotated[str, typer.Option(help="The child.")],
    role: Annotated[str, typer.Option(help="educator, manager or dsl.")] = "educator",
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=TIME_FORMATS,
            metavar="TIME",
            help=f"End of the assignment ({TIME_HELP}); default: open-ended.",
        ),
    ] = None,
) -> None:
    """Propose assigning a member of staff to a child; a second person approves it."""
    proposal = connect(ctx).assign(
        staff_id=staff, child_id=child, role=role, valid_to=None if until is None else utc(until)
    )
    report_proposed(ctx, proposal)


@app.command("unassign")
@friendly
def unassign(
    ctx: typer.Context, assignment_id: Annotated[str, typer.Argument(help="The assignment.")]
) -> None:
    """End an assignment now."""
    connect(ctx).end_assignment(assignment_id)
    report(ctx, {"assignment_id": assignment_id, "ended": True}, "The assignment has ended.")


@app.command("guardian")
@friendly
def guardian(
    ctx: typer.Context,
    guardian_id: Annotated[str, typer.Option("--guardian", help="The guardian.")],
    child: Annotated[str, typer.Option(help="The child.")],
    parental_responsibility: Annotated[
        bool, typer.Option(help="Whether they hold parental responsibility.")
    ] = True,
) -> None:
    """Propose that a person is a child's guardian; a second person approves it."""
    proposal = connect(ctx).add_guardian(
        guardian_id=guardian_id, child_id=child, parental_responsibility=parental_responsibility
    )
    report_proposed(ctx, proposal)


@revoke_app.command("principal")
@friendly
def revoke_principal(
    ctx: typer.Context, principal_id: Annotated[str, typer.Argument(help="The person.")]
) -> None:
    """Revoke a person and every device they have."""
    connect(ctx).revoke_principal(principal_id)
    report(ctx, {"principal_id": principal_id, "revoked": True}, "Revoked, with all devices.")


@revoke_app.command("device")
@friendly
def revoke_device(
    ctx: typer.Context, device_id: Annotated[str, typer.Argument(help="The device.")]
) -> None:
    """Revoke one device."""
    connect(ctx).revoke_device(device_id)
    report(ctx, {"device_id": device_id, "revoked": True}, "The device is revoked.")


@app.command("offboard")
@friendly
def offboard(
    ctx: typer.Context,
    principal_id: Annotated[str, typer.Argument(help="The member of staff who leaves.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit; told to whoever is told).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would end; change nothing.")
    ] = False,
) -> None:
    """A member of staff leaves: end every assignment of theirs (current and future), revoke
    every device and them, and void their open enrolment codes, in one step, with one audit
    entry. Offboarding an admin, manager or DSL is announced to the others. Shares they
    created stay. Guardians and outside recipients are revoked with `admin revoke principal`."""
    done = connect(ctx).offboard(principal_id, reason=reason, dry_run=dry_run)
    if options(ctx).json:
        emit_json(done)
        return
    _show_offboarding(done)


def _show_offboarding(done: Offboarded) -> None:
    ended = "would end" if done.dry_run else "ended"
    rows: list[tuple[str, str, object]] = [
        *(("assignment", ended, item) for item in done.assignments_ended),
        *(
            ("device", "would be revoked" if done.dry_run else "revoked", item)
            for item in done.devices_revoked
        ),
        *(
            ("proposal for them", "would be cancelled" if done.dry_run else "cancelled", item)
            for item in done.proposals_cancelled
        ),
    ]
    if rows:
        table(f"Offboarding {done.principal_id}", ["what", "state", "item id"], rows)
    codes = "would stop" if done.dry_run else "stopped"
    say(f"{done.codes_voided} open enrolment code(s) {codes} working.")
    if done.shares_kept:
        say(f"{done.shares_kept} live share(s) they created for others stay.")
    if done.announced_to:
        told = "would be told" if done.dry_run else "were told"
        say(f"{len(done.announced_to)} other admin(s), manager(s) and DSL(s) {told}.")
    if done.dry_run:
        say("Dry run: nothing changed. Run again without --dry-run to offboard.")
    else:
        say(f"Offboarded {done.principal_id}: their next request is refused.")


admin_rooms.register(app)
