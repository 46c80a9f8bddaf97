"""``carevault devices …`` and ``carevault notifications``: your own devices, and what the
key service told you about your account."""

from __future__ import annotations

from typing import Annotated

import typer

from clients.output import emit_json, friendly, options, report, say, table
from clients.session import connect
from clients.times import shown
from vault.client import DeviceInfo

app = typer.Typer(
    help="Your own devices: list them, add another, revoke one.", no_args_is_help=True
)

ORIGIN: dict[str, str] = {
    "first": "first device",
    "added": "added from another of yours",
    "recovered": "recovered",
}

NOTICE: dict[str, str] = {
    "device.recovered": "a device was enrolled for you with a recovery code",
    "device.recovery_approved": "a recovery code for your account was approved",
    "device.code_approved": "an enrolment code for your account was approved",
}


@app.command("list")
@friendly
def list_devices(ctx: typer.Context) -> None:
    """Every device enrolled for you, revoked ones included. Revoke any you do not know."""
    found = connect(ctx).devices()
    if options(ctx).json:
        emit_json(found)
        return
    table(
        "Your devices",
        ["device id", "name", "added", "how", "state"],
        [
            (
                d.device_id,
                d.name,
                f"{d.created_at:%Y-%m-%d}",
                ORIGIN.get(d.origin, d.origin),
                _state(d),
            )
            for d in found
        ],
    )
    for device in found:
        if device.approved_by:
            say(
                f"Device {device.device_id} was enrolled with a code {device.approved_by} approved."
            )


def _state(device: DeviceInfo) -> str:
    if device.revoked_at is not None:
        return f"revoked {device.revoked_at:%Y-%m-%d}"
    return "this computer" if device.current else "active"


@app.command("add")
@friendly
def add(ctx: typer.Context) -> None:
    """A one-time code to enrol another device of yours (no admin sees it)."""
    client = connect(ctx)
    issued = client.add_device_code()
    url = client.identity.service_url
    if options(ctx).json:
        emit_json({"code": issued.code, "expires_at": issued.expires_at, "url": url})
        return
    say(
        f"One-time code for another device of yours: {issued.code} "
        f"(valid until {shown(issued.expires_at)}).\n"
        f"On that device run:\n  carevault enroll --url {url} --code {issued.code}"
    )


@app.command("revoke")
@friendly
def revoke(
    ctx: typer.Context, device_id: Annotated[str, typer.Argument(help="The device.")]
) -> None:
    """Revoke one of your devices at once (a lost phone, an old laptop)."""
    connect(ctx).revoke_device(device_id)
    report(ctx, {"device_id": device_id, "revoked": True}, "The device is revoked.")


@friendly
def notifications(ctx: typer.Context) -> None:
    """What the key service told you about your account: recovered devices, approved codes.
    One you do not expect means someone else may hold a device of yours: revoke it."""
    found = connect(ctx).notifications()
    if options(ctx).json:
        emit_json(found)
        return
    if not found:
        say("No notifications.")
    for notice in found:
        details = ", ".join(f"{k}: {v}" for k, v in sorted(notice.detail.items()) if v is not None)
        say(
            f"{shown(notice.at)}  {NOTICE.get(notice.kind, notice.kind)}"
            + (f" ({details})" if details else "")
        )
