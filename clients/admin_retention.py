"""``carevault admin retention|shred|hold …``: what retention has made due, shredding a record
or a whole child (a manager or DSL asks, a second one approves, the key service waits 30 days
by default and then destroys the keys), and legal holds (docs/decisions/0019).

    carevault admin retention due [--json]
    carevault admin retention dates CHILD [--born DATE] [--left DATE]
    carevault admin shred request RECORD | --child CHILD --reason TEXT [--dry-run]
    carevault admin shred approve|cancel|show SHRED ;  shred list
    carevault admin shred certificate SHRED [--service-key KEY] [-o FILE]
    carevault admin shred verify FILE --service-key KEY
    carevault admin hold set CHILD --reason TEXT ;  hold lift HOLD --reason TEXT
"""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from clients.output import emit_json, err_console, friendly, options, report, say, table
from clients.session import connect
from clients.times import shown
from vault.client.retention import ShredRequest, SignedCertificate, verify_certificate

retention_app = typer.Typer(help="Retention: what is due for shredding.", no_args_is_help=True)
shred_app = typer.Typer(
    help="Crypto-shred a record or a whole child: asked, approved by a second manager or "
    "DSL, carried out after a waiting period.",
    no_args_is_help=True,
)
hold_app = typer.Typer(help="Legal holds: nothing of a child is shredded while one is on.")


def register(app: typer.Typer) -> None:
    """Mount these commands under ``carevault admin``."""
    app.add_typer(retention_app, name="retention")
    app.add_typer(shred_app, name="shred")
    app.add_typer(hold_app, name="hold")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise typer.BadParameter("not base64url", param_hint="'--service-key'") from exc


@retention_app.command("due")
@friendly
def due(ctx: typer.Context) -> None:
    """Records and children whose retention is over, with the rule that made each due (defaults:
    five years after leaving; safeguarding until the child is 25; CAREVAULT_RETENTION)."""
    items = connect(ctx).retention_due()
    if options(ctx).json:
        emit_json([{**item.__dict__, "due_on": item.due_on.isoformat()} for item in items])
        return
    if not items:
        say("Nothing is due.")
        return
    table(
        "Due for shredding",
        ["kind", "record or child id", "category", "rule", "due on", "hold", "shred open"],
        [
            (
                item.kind,
                item.record_id or item.child_id,
                item.category or "(all)",
                item.rule,
                item.due_on.isoformat(),
                "yes" if item.on_hold else "",
                "yes" if item.shred_open else "",
            )
            for item in items
        ],
    )


@retention_app.command("dates")
@friendly
def dates(
    ctx: typer.Context,
    child_id: Annotated[str, typer.Argument(help="The child.")],
    born: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD.")] = None,
    left: Annotated[str | None, typer.Option(help="Leaving date, YYYY-MM-DD.")] = None,
) -> None:
    """Set a child's date of birth and leaving date (an admin, or a manager/DSL of the child);
    a date left out is cleared."""
    parsed = [_date(value, hint) for value, hint in ((born, "--born"), (left, "--left"))]
    connect(ctx).set_child_dates(child_id, date_of_birth=parsed[0], left_on=parsed[1])
    report(ctx, {"child_id": child_id, "date_of_birth": born, "left_on": left}, "Dates set.")


def _date(value: str | None, hint: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("a date is YYYY-MM-DD", param_hint=f"'{hint}'") from exc


def _show(ctx: typer.Context, shred: ShredRequest, message: str) -> None:
    if options(ctx).json:
        emit_json(shred)
        return
    rows: list[tuple[str, object]] = [
        ("shred id", shred.shred_id or "(dry run)"),
        ("target", f"{shred.target} {shred.record_id or shred.child_id}"),
        ("children", " ".join(shred.child_ids)),
        ("state", shred.state),
        ("reason", shred.reason),
        ("requested by", f"{shred.requested_by} at {shown(shred.requested_at)}"),
    ]
    if shred.approved_by:
        rows.append(("approved by", shred.approved_by))
    if shred.not_before and shred.state == "approved":
        rows.append(("carried out from", shown(shred.not_before)))
    if shred.cancel_reason:
        rows.append(("cancelled", shred.cancel_reason))
    if shred.done_at:
        rows.append(("done", shown(shred.done_at)))
    if shred.records is not None:
        rows.append(("destroys", f"{shred.records} record(s), {shred.versions} version(s)"))
    table("Shred", ["", ""], rows)
    say(message)


@shred_app.command("request")
@friendly
def request(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit and the certificate).")],
    record_id: Annotated[str | None, typer.Argument(help="The record.")] = None,
    child: Annotated[str | None, typer.Option(help="Shred this whole child instead.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be destroyed; store nothing.")
    ] = False,
) -> None:
    """Ask for a record, or a whole child (--child), to be shredded. A second manager or DSL
    of the child approves it; it is carried out after the waiting period."""
    if (record_id is None) == (child is None):
        raise typer.BadParameter("name a RECORD or --child CHILD, not both")
    shred = connect(ctx).request_shred(
        record_id=record_id, child_id=child, reason=reason, dry_run=dry_run
    )
    _show(
        ctx,
        shred,
        "Dry run: nothing stored."
        if dry_run
        else f"Asked. A second manager or DSL approves it: carevault admin shred approve "
        f"{shred.shred_id}",
    )


@shred_app.command("approve")
@friendly
def approve(ctx: typer.Context, shred_id: Annotated[str, typer.Argument()]) -> None:
    """Approve someone else's shred request: the waiting period starts now."""
    shred = connect(ctx).approve_shred(shred_id)
    _show(ctx, shred, "Approved. It can be cancelled until it is carried out.")


@shred_app.command("cancel")
@friendly
def cancel(
    ctx: typer.Context,
    shred_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why.")],
) -> None:
    shred = connect(ctx).cancel_shred(shred_id, reason=reason)
    _show(ctx, shred, "Cancelled: nothing is destroyed.")


@shred_app.command("show")
@friendly
def show(ctx: typer.Context, shred_id: Annotated[str, typer.Argument()]) -> None:
    shred = connect(ctx).shred(shred_id)
    _show(ctx, shred, "")


@shred_app.command("list")
@friendly
def list_shreds(ctx: typer.Context) -> None:
    """Shreds of the children you are a manager or DSL of (admins: every one)."""
    found = connect(ctx).shreds()
    if options(ctx).json:
        emit_json(found)
        return
    table(
        "Shreds",
        ["shred id", "target", "state", "requested by", "carried out from"],
        [
            (
                s.shred_id,
                f"{s.target} {s.record_id or s.child_id}",
                s.state,
                s.requested_by,
                shown(s.not_before) if s.not_before else "",
            )
            for s in found
        ],
    )


def _certificate_json(signed: SignedCertificate, service_key: bytes) -> dict[str, Any]:
    return {
        "statement": _b64(signed.statement),
        "signature": _b64(signed.signature),
        "service_key": _b64(service_key),
        "certificate": signed.certificate.__dict__,
    }


@shred_app.command("certificate")
@friendly
def certificate(
    ctx: typer.Context,
    shred_id: Annotated[str, typer.Argument()],
    service_key: Annotated[
        str | None,
        typer.Option(
            help="The service key you pinned (base64url); without it, the key the "
            "service reports now."
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Save it here.")] = None,
) -> None:
    """Fetch a shred's signed certificate and verify it."""
    client = connect(ctx)
    if service_key is None:
        key = client.service_signing_key()
        err_console.print(
            "Verified against the key the service reports now: pin it and pass --service-key "
            "to verify against your own copy.",
            markup=False,
        )
    else:
        key = _unb64(service_key)
    signed = client.shred_certificate(shred_id, service_key=key)
    value = _certificate_json(signed, key)
    if output is not None:
        output.write_text(json.dumps(value, indent=2) + "\n")
    report(
        ctx,
        value,
        f"Certificate verified: {signed.certificate.target} shredded at "
        f"{signed.certificate.shredded_at}, asked by {signed.certificate.requested_by}, "
        f"approved by {signed.certificate.approved_by}.",
    )


@shred_app.command("verify")
@friendly
def verify(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A certificate saved with -o.")],
    service_key: Annotated[str, typer.Option(help="The service key you pinned (base64url).")],
) -> None:
    """Verify a saved certificate offline."""
    saved = json.loads(path.read_text())
    try:
        signed = verify_certificate(
            _unb64(service_key), _unb64(saved["statement"]), _unb64(saved["signature"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise typer.BadParameter(f"the certificate does not verify: {exc}") from exc
    report(ctx, signed.certificate.__dict__, f"Certificate {signed.certificate.shred_id} verifies.")


@hold_app.command("set")
@friendly
def hold_set(
    ctx: typer.Context,
    child_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit).")],
) -> None:
    hold_id = connect(ctx).set_legal_hold(child_id, reason=reason)
    report(ctx, {"hold_id": hold_id}, f"Hold {hold_id} is on: nothing of the child is shredded.")


@hold_app.command("lift")
@friendly
def hold_lift(
    ctx: typer.Context,
    hold_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit).")],
) -> None:
    connect(ctx).lift_legal_hold(hold_id, reason=reason)
    report(ctx, {"hold_id": hold_id, "state": "lifted"}, f"Hold {hold_id} lifted.")
