"""``carevault admin …``: people, devices, children and who may see them. Admin rights never
give access to record content."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from clients.output import friendly, report
from clients.session import connect
from clients.times import TIME_FORMATS, TIME_HELP, utc

app = typer.Typer(help="Run a setting: people, children and relationships.", no_args_is_help=True)
principal_app = typer.Typer(help="People: staff, guardians and outside recipients.")
child_app = typer.Typer(help="Children.")
revoke_app = typer.Typer(help="Revoke a person or one device, at once.")
app.add_typer(principal_app, name="principal")
app.add_typer(child_app, name="child")
app.add_typer(revoke_app, name="revoke")


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
    """Add a person. Then give them an enrolment code with `admin code`."""
    principal_id = connect(ctx).create_principal(
        kind=kind, display_name=name, roles=role or [], organisation=organisation
    )
    report(ctx, {"principal_id": principal_id}, f"Added {name}: {principal_id}")


@app.command("code")
@friendly
def code(
    ctx: typer.Context, principal_id: Annotated[str, typer.Argument(help="The person.")]
) -> None:
    """A one-time enrolment code (valid 24 hours) for a person's device."""
    value, expires = connect(ctx).enrolment_code(principal_id)
    report(
        ctx,
        {"code": value, "expires_at": expires},
        f"Enrolment code: {value} (valid until {expires:%Y-%m-%d %H:%M} UTC)",
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
    """Assign a member of staff to a child."""
    assignment_id = connect(ctx).assign(
        staff_id=staff, child_id=child, role=role, valid_to=None if until is None else utc(until)
    )
    report(ctx, {"assignment_id": assignment_id}, f"Assigned: {assignment_id}")


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
    """Record that a person is a child's guardian."""
    guardianship_id = connect(ctx).add_guardian(
        guardian_id=guardian_id, child_id=child, parental_responsibility=parental_responsibility
    )
    report(ctx, {"guardianship_id": guardianship_id}, f"Guardian recorded: {guardianship_id}")


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
