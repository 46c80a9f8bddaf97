"""``carevault shares …``: share records with an outside recipient on a consent or court order
(the child's manager or DSL), list and show shares, follow their delivery (``status``,
``overdue``), revoke one, and, as the recipient, download a share whole (``get``) and
acknowledge what was received (``ack``).

Which basis, which records and how long are checked here before the key service is asked, so
a mistyped command costs no request (exit code 2). ``get`` keeps a manifest in the output
directory, so a rerun fetches only what is missing or no longer matches (vault/client/shares.py);
``ack`` signs for exactly what that manifest holds, and refuses before any request when a
record of the share is not there and checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from clients.output import emit_json, err_console, friendly, options, report, say, table
from clients.session import connect
from clients.times import TIME_FORMATS, TIME_HELP, shown, utc
from vault.client import Share
from vault.format import Category

app = typer.Typer(
    help="Share records with an outside recipient, see and revoke shares, and download what "
    "was shared with you.",
    no_args_is_help=True,
)

ShareArgument = Annotated[str, typer.Argument(help="The share's id.")]

CREATE_HELP = (
    "Share records of one child with an outside recipient, on a consent or a court order that "
    "names them (the child's manager or DSL).\n\n"
    "List the records with --record, or share every current record of some categories with "
    "--category. Each record is shared as it is now: a later amendment is not shared unless "
    "you share it again. Without --until or --days the share lasts 14 days (the key "
    "service's default), and never past the end of its consent or court order.\n\n"
    "With --ack-within or --ack-by the recipient is expected to acknowledge receipt by then "
    "(not after the share ends); past it without an acknowledgement, the share is listed by "
    "'carevault shares overdue'."
)

OutputOption = Annotated[
    Path, typer.Option("-o", "--output", help="The directory the share was downloaded into.")
]


def _left(found: Share) -> str:
    """Downloads left of each record: 'no cap', or the fewest and most any record has left."""
    if found.download_cap is None:
        return "no cap"
    left = [item.remaining or 0 for item in found.items]
    if not left:
        return f"0 of {found.download_cap}"
    low, high = min(left), max(left)
    span = str(low) if low == high else f"{low}-{high}"
    return f"{span} of {found.download_cap}"


def _state(found: Share) -> str:
    if found.status is None:
        return found.state
    return f"{found.state} ({found.status}{', overdue' if found.overdue else ''})"


def _deadline(found: Share) -> str:
    if found.ack_due is None:
        return "none"
    if found.overdue:
        return f"{shown(found.ack_due)}, overdue: not acknowledged in time"
    if found.acknowledged_at is not None:
        return f"{shown(found.ack_due)}, met"
    return shown(found.ack_due)


def _ack_due(
    *, within: int | None, by: datetime | None, valid_to: datetime | None
) -> datetime | None:
    """The acknowledgement deadline --ack-within or --ack-by ask for, checked here."""
    if within is not None and by is not None:
        raise typer.BadParameter(
            "give --ack-within or --ack-by, not both", param_hint="'--ack-within'"
        )
    due = utc(by) if by is not None else None
    if within is not None:
        due = datetime.now(UTC) + timedelta(days=within)
    if due is None:
        return None
    if due <= datetime.now(UTC):
        raise typer.BadParameter(
            f"--ack-by ({shown(due)}) is already past", param_hint="'--ack-by'"
        )
    if valid_to is not None and due > valid_to:
        raise typer.BadParameter(
            f"the acknowledgement deadline ({shown(due)}) is after the share ends "
            f"({shown(valid_to)})",
            param_hint="'--ack-within' / '--ack-by'",
        )
    return due


def _invitation(found: Share) -> str | None:
    if found.invitation is None:
        return None
    return f"{found.invitation.code} (expires {shown(found.invitation.expires_at)})"


def _tell_invitation(found: Share) -> None:
    told = _invitation(found)
    if told is not None:
        say(
            "The recipient is invited: hand them this one-time enrolment code in person, "
            f"never by e-mail: {told}"
        )


@app.command("create", help=CREATE_HELP)
@friendly
def create(
    ctx: typer.Context,
    recipient: Annotated[
        str, typer.Option("--recipient", help="The outside recipient's principal id.")
    ],
    purpose: Annotated[str, typer.Option("--purpose", help="Why the records are shared.")],
    consent: Annotated[
        str | None, typer.Option("--consent", help="The consent the share rests on.")
    ] = None,
    court_order: Annotated[
        str | None, typer.Option("--court-order", help="The court order the share rests on.")
    ] = None,
    record: Annotated[
        list[str] | None,
        typer.Option("--record", help="A record to share (repeat for several)."),
    ] = None,
    category: Annotated[
        list[Category] | None,
        typer.Option(
            "--category",
            help="Share the child's current records of this category (repeat for several).",
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until",
            formats=TIME_FORMATS,
            metavar="TIME",
            help=f"When the share ends ({TIME_HELP}).",
        ),
    ] = None,
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="The share ends this many days from now.")
    ] = None,
    cap: Annotated[
        int | None,
        typer.Option(
            "--cap", min=1, max=1000, help="Downloads allowed per record (default: no cap)."
        ),
    ] = None,
    ack_within: Annotated[
        int | None,
        typer.Option(
            "--ack-within",
            min=1,
            metavar="DAYS",
            help="The recipient should acknowledge receipt within this many days.",
        ),
    ] = None,
    ack_by: Annotated[
        datetime | None,
        typer.Option(
            "--ack-by",
            formats=TIME_FORMATS,
            metavar="TIME",
            help=f"The recipient should acknowledge receipt by then ({TIME_HELP}).",
        ),
    ] = None,
) -> None:
    if (consent is None) == (court_order is None):
        raise typer.BadParameter(
            "give exactly one of --consent and --court-order", param_hint="'--consent'"
        )
    if bool(record) == bool(category):
        raise typer.BadParameter(
            "give either --record or --category (one or more times), not both",
            param_hint="'--record'",
        )
    if until is not None and days is not None:
        raise typer.BadParameter("give --until or --days, not both", param_hint="'--until'")
    valid_to = utc(until) if until is not None else None
    if days is not None:
        valid_to = datetime.now(UTC) + timedelta(days=days)
    if valid_to is not None and valid_to <= datetime.now(UTC):
        raise typer.BadParameter(
            f"--until ({shown(valid_to)}) is already past", param_hint="'--until'"
        )
    ack_due = _ack_due(within=ack_within, by=ack_by, valid_to=valid_to)
    made = connect(ctx).create_share(
        recipient_id=recipient,
        basis="consent" if consent is not None else "court_order",
        basis_id=consent or court_order or "",
        purpose=purpose,
        record_ids=list(dict.fromkeys(record or [])),
        categories=list(dict.fromkeys(c.value for c in category or [])),
        valid_to=valid_to,
        download_cap=cap,
        ack_due=ack_due,
    )
    if options(ctx).json:
        emit_json(made)
        return
    say(
        f"Shared {len(made.items)} record(s) with {made.recipient_id} until "
        f"{shown(made.valid_to)}: share {made.share_id}"
    )
    if made.ack_due is not None:
        say(f"The recipient should acknowledge receipt by {shown(made.ack_due)}.")
    _tell_invitation(made)


@app.command("list")
@friendly
def list_shares(ctx: typer.Context) -> None:
    """The shares you made, and the shares made for you: until when, downloads left."""
    client = connect(ctx)
    found = client.shares()
    if options(ctx).json:
        emit_json(found)
        return
    me = client.identity.principal_id
    # The child is in ``show`` and in JSON: two ids kept whole do not fit a terminal's width.
    columns = ["share id", "recipient", "state", "until", "records", "left per record"]
    invited = any(s.invitation is not None for s in found)
    if invited:
        columns.append("invitation")
    rows = []
    for s in found:
        row: list[object] = [
            s.share_id,
            "you" if s.recipient_id == me else s.recipient_id,
            _state(s),
            shown(s.valid_to),
            len(s.items),
            _left(s),
        ]
        if invited:
            row.append(_invitation(s))
        rows.append(row)
    table("Shares", columns, rows)


@app.command("show")
@friendly
def show(ctx: typer.Context, share_id: ShareArgument) -> None:
    """One share and the records it covers, with the downloads used and left of each."""
    found = connect(ctx).share(share_id)
    if options(ctx).json:
        emit_json(found)
        return
    say(f"Share {found.share_id}: {_state(found)}")
    say(f"  recipient {found.recipient_id}, child {found.child_id}")
    say(f"  on {found.basis.replace('_', ' ')} {found.basis_id}, for: {found.purpose}")
    say(f"  made by {found.created_by} on {shown(found.created_at)}")
    say(f"  valid from {shown(found.valid_from)} until {shown(found.valid_to)}")
    if found.revoked_at is not None:
        say(f"  revoked on {shown(found.revoked_at)}: {found.revoke_reason or ''}")
    _tell_invitation(found)
    table(
        "Records",
        ["record id", "version", "downloads", "left"],
        [
            (i.record_id, i.version, i.used, "no cap" if i.remaining is None else i.remaining)
            for i in found.items
        ],
    )


@app.command("status")
@friendly
def status(ctx: typer.Context, share_id: ShareArgument) -> None:
    """Where a share's delivery stands: sent, opened, acknowledged, expired or revoked, when it
    was opened and acknowledged, its acknowledgement deadline and whether that passed, and the
    downloads left of each record."""
    found = connect(ctx).share(share_id)
    if options(ctx).json:
        emit_json(found)
        return
    overdue = ", overdue" if found.overdue else ""
    say(f"Share {found.share_id}: {found.status or found.state}{overdue}")
    say(f"  recipient {found.recipient_id}, until {shown(found.valid_to)} ({found.state})")
    say(f"  opened: {shown(found.opened_at) if found.opened_at else 'not yet'}")
    if found.acknowledged_at is not None:
        device = f" by device {found.acknowledged_device}" if found.acknowledged_device else ""
        say(f"  acknowledged: {shown(found.acknowledged_at)}{device}")
    else:
        say("  acknowledged: not yet")
    say(f"  acknowledgement due: {_deadline(found)}")
    if found.revoked_at is not None:
        say(f"  revoked on {shown(found.revoked_at)}")
    table(
        "Records",
        ["record id", "version", "downloads", "left"],
        [
            (i.record_id, i.version, i.used, "no cap" if i.remaining is None else i.remaining)
            for i in found.items
        ],
    )


@app.command("overdue")
@friendly
def overdue(ctx: typer.Context) -> None:
    """The shares you made whose recipient has not acknowledged receipt by the deadline
    (revoked ones excepted), the most overdue first."""
    found = connect(ctx).overdue_shares()
    if options(ctx).json:
        emit_json(found)
        return
    if not found:
        say("No overdue shares: every share you made with a deadline is acknowledged or on time.")
        return
    table(
        "Overdue shares",
        ["share id", "recipient", "status", "due", "until", "records"],
        [
            (
                s.share_id,
                s.recipient_id,
                s.status or s.state,
                shown(s.ack_due) if s.ack_due else None,
                shown(s.valid_to),
                len(s.items),
            )
            for s in found
        ],
    )


@app.command("revoke")
@friendly
def revoke(
    ctx: typer.Context,
    share_id: ShareArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record and the audit.")],
) -> None:
    """Revoke a share now: the recipient's next download is refused."""
    revoked = connect(ctx).revoke_share(share_id, reason=reason)
    report(
        ctx,
        {"share_id": revoked.share_id, "state": revoked.state},
        f"Share {revoked.share_id} is revoked.",
    )


class _Bars:
    """A Rich bar on stderr for ``get``: the bytes of the records started so far, and how many
    of the records to fetch were started (vault.client.ShareProgress)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None
        self._fetch = 0
        self._skip = 0
        self._done = 0

    def planned(self, *, fetch: int, skip: int) -> None:
        self._fetch, self._skip = fetch, skip

    def fetching(self, *, record_id: str, version: int, size: int) -> None:
        # Several records arrive at once: one bar of the bytes of every record started.
        self._done += 1
        already = f", {self._skip} already here" if self._skip else ""
        description = f"Record {self._done} of {self._fetch}{already}"
        if self._task is None:
            self._task = self._progress.add_task(description, total=size or None)
            return
        total = self._progress.tasks[self._task].total
        self._progress.update(
            self._task, description=description, total=(total or 0) + size or None
        )

    def advance(self, count: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)


@contextmanager
def _bars(*, enabled: bool) -> Iterator[_Bars]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not enabled or not err_console.is_terminal,
    )
    with progress:
        yield _Bars(progress)


@app.command("get")
@friendly
def get(
    ctx: typer.Context,
    share_id: ShareArgument,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory to write the records into.")
    ],
) -> None:
    """Download every record of a share shared with you, each checked and decrypted here.

    A rerun skips what was already received and still checks out, and fetches the rest."""
    as_json = options(ctx).json
    with _bars(enabled=not as_json) as bars:
        got = connect(ctx).get_share(share_id, out_dir=output, progress=bars)
    if as_json:
        emit_json(got)
        return
    say(
        f"Received {len(got.fetched)} record(s) into {got.directory}; "
        f"{len(got.skipped)} already there and checked were skipped. To confirm receipt to "
        f"whoever shared them: carevault shares ack {share_id} -o {got.directory}"
    )


@app.command("ack")
@friendly
def ack(ctx: typer.Context, share_id: ShareArgument, output: OutputOption) -> None:
    """Acknowledge, as the recipient, that you received a share: this device signs the list of
    every record in the directory's manifest with the digest of what was downloaded.

    Each file is checked again first; if a record of the share is not there or has changed,
    nothing is sent: run 'carevault shares get' into the same directory, then 'ack' again."""
    acked = connect(ctx).ack_share(share_id, out_dir=output)
    if options(ctx).json:
        emit_json(acked)
        return
    when = shown(acked.acknowledged_at) if acked.acknowledged_at else "now"
    say(
        f"Acknowledged share {acked.share_id}: {len(acked.items)} record(s), signed by this "
        f"device, on {when}."
    )
