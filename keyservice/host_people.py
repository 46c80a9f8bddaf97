"""Host-side commands about people: codes issued at the host, and approvals given there.

Whoever runs these holds the host, and with it the database and the root key: they could
read everything without the API, so they are trusted as an independent second person
(docs/decisions/0004-admins-cannot-read.md). This is how a deployment with one admin gets its
first manager, whose code no admin has seen, and how a deadlock with no eligible approver is
broken. Every use is in the audit as done at the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import typer
from sqlalchemy import Connection

from keyservice import host_audit
from keyservice.audit.chain import AuditEvent
from keyservice.catalog import proposals
from keyservice.catalog.grants import kind_of
from keyservice.catalog.people import (
    active_devices,
    has_devices,
    void_codes,
)
from keyservice.catalog.people import revoke_devices as revoke_devices_of
from keyservice.db import make_engine, upgrade_to_head
from keyservice.enrolment import issue_code
from keyservice.errors import InvalidChangeError
from keyservice.keys import open_root_key
from keyservice.settings import Settings

proposals_app = typer.Typer(
    help="Proposals waiting for a second person, approved or rejected at the host.",
    no_args_is_help=True,
)


_now = host_audit.now


def _connect(settings: Settings) -> Connection:
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    return engine.connect()


_append = host_audit.append_at_host
_settings = host_audit.host_settings


@dataclass(frozen=True)
class HostCode:
    code: str
    expires_at: datetime
    recovering: bool
    voided: int
    revoked: int


def issue_at_host(
    connection: Connection, principal_id: str, *, now: datetime, revoke: bool = False
) -> HostCode:
    """A code nobody but the host sees. Every other unused code for the person stops
    working; if they had devices (revoked first with ``revoke``), the code is a recovery:
    its device is marked so, and the person is told."""
    revoked = revoke_devices_of(connection, principal_id, now=now) if revoke else 0
    voided = void_codes(connection, principal_id, now=now)
    recovering = has_devices(connection, principal_id)
    code, expires_at = issue_code(
        connection,
        principal_id=principal_id,
        now=now,
        purpose="recovered" if recovering else "first",
    )
    if recovering:
        proposals.notify(
            connection,
            principal_id=principal_id,
            kind="device.recovery_approved",
            detail={"approved_by": "host", "devices_revoked": revoked},
            now=now,
        )
    return HostCode(code, expires_at, recovering, voided, revoked)


def enrolment_code(
    principal_id: str = typer.Argument(..., help="The person's principal id."),
    recover: bool = typer.Option(
        False, "--recover", help="Issue it although the person has a device (a lost one)."
    ),
    revoke_devices: bool = typer.Option(
        False, "--revoke-devices", help="With --recover: revoke the person's devices first."
    ),
) -> None:
    """Issue an enrolment code at the host (no admin sees it): a deployment's first manager,
    or a recovery nobody else can approve. Every other unused code for the person stops
    working; the person is told if it recovers their account."""
    settings = _settings()
    now = _now()
    with _connect(settings) as connection:
        if kind_of(connection, principal_id) is None:
            typer.echo(f"no active principal {principal_id}", err=True)
            raise typer.Exit(code=1)
        active = active_devices(connection, principal_id)
        for device in active:
            vouched = device.vouched_by or "the host"
            typer.echo(
                f"device {device.device_id} ({device.name!r}, {device.origin}, enrolled "
                f"{device.created_at:%Y-%m-%d %H:%M}Z with a code seen by {vouched})",
                err=True,
            )
        if active and not recover:
            # The device an admin enrolled with someone's first code would stay beside the
            # one this code gives the real person: say whose code each device came from.
            typer.echo(
                f"{principal_id} already has {len(active)} device(s), listed above; ask them "
                "whether each is theirs. To recover an account, run again with --recover "
                "(and --revoke-devices to revoke those devices).",
                err=True,
            )
            raise typer.Exit(code=1)
        issued = issue_at_host(connection, principal_id, now=now, revoke=revoke_devices)
        code, expires_at = issued.code, issued.expires_at
        recovering, voided, revoked = issued.recovering, issued.voided, issued.revoked
        _append(
            connection,
            settings,
            AuditEvent(
                action="enrolment_code.issue",
                outcome="allow",
                detail={
                    "principal_id": principal_id,
                    "by": "host",
                    "recovery": recovering,
                    "codes_voided": voided,
                    "devices_revoked": revoked,
                },
            ),
        )
        connection.commit()
    if voided:
        typer.echo(f"{voided} other unused code(s) for {principal_id} no longer work")
    if revoked:
        typer.echo(f"revoked {revoked} device(s) of {principal_id}")
    typer.echo(f"principal_id: {principal_id}")
    typer.echo(f"enrolment code (single use, expires {expires_at:%Y-%m-%dT%H:%M:%SZ}): {code}")


@proposals_app.command("list")
def list_pending() -> None:
    """Pending proposals, oldest first."""
    settings = _settings()
    with _connect(settings) as connection:
        now = _now()
        waiting = proposals.pending(connection, now=now)
        # Who else saw a code of the beneficiary's: what to check before approving.
        seen = {
            stored.proposal_id: proposals.vouched_for(connection, stored, now=now)
            for stored in waiting
        }
        connection.rollback()
    if not waiting:
        typer.echo("no proposals are waiting")
    for stored in waiting:
        vouched = ",".join(seen.get(stored.proposal_id, [])) or "-"
        typer.echo(
            f"{stored.proposal_id}  {stored.action}  child={stored.child_id or '-'}  "
            f"for={stored.beneficiary_id or '-'}  codes_seen_by={vouched}  "
            f"by={stored.proposed_by}  since {stored.proposed_at:%Y-%m-%d %H:%M}Z"
        )


def _decide(proposal_id: str, *, approve: bool, reason: str | None, force: bool = False) -> None:
    settings = _settings()
    now = _now()
    with _connect(settings) as connection:
        stored = proposals.load(connection, proposal_id)
        if stored is None or stored.state_at(now) != "pending":
            typer.echo(f"no pending proposal {proposal_id}", err=True)
            raise typer.Exit(code=1)
        seen = proposals.vouched_for(connection, stored, now=now)
        if approve and stored.proposed_by in seen and not force:
            # The proposer saw a code of the beneficiary's: the account may be the proposer's
            # own stand-in. The host is trusted as a second person, not as a rubber stamp.
            typer.echo(
                f"{stored.proposed_by}, who proposed this, saw an enrolment code of "
                f"{stored.beneficiary_id}'s (codes seen by: {', '.join(seen)}). Make sure the "
                "account is used by the real person, then run again with --force.",
                err=True,
            )
            raise typer.Exit(code=1)
        applied = None
        if approve:
            try:
                # An import creating children makes their first key versions.
                creates = stored.payload.get("kind") == "new_children"
                applied = proposals.apply(
                    connection,
                    stored,
                    approver_id=None,
                    approver_device=None,
                    now=now,
                    root=open_root_key(settings) if creates else None,
                )
            except InvalidChangeError as exc:
                typer.echo(f"cannot apply proposal {proposal_id}: {exc}", err=True)
                raise typer.Exit(code=1) from exc
        proposals.decide(
            connection,
            stored,
            state="approved" if approve else "rejected",
            by=None,
            device=None,
            reason=reason,
            result_id=applied.result_id if applied else None,
            now=now,
        )
        _append(
            connection,
            settings,
            AuditEvent(
                action="proposal.approve" if approve else "proposal.reject",
                outcome="allow",
                detail={
                    "proposal_id": proposal_id,
                    "action": stored.action.value,
                    "child_id": stored.child_id,
                    "beneficiary_id": stored.beneficiary_id,
                    "result_id": applied.result_id if applied else None,
                    "proposed_by": stored.proposed_by,
                    "proposed_device": stored.proposed_device,
                    "by": "host",
                },
            ),
        )
        if applied is not None:
            _append(
                connection,
                settings,
                AuditEvent(
                    action=proposals.CHANGE_ACTIONS[stored.action],
                    outcome="allow",
                    detail={**proposals.change_detail(stored, applied), "by": "host"},
                ),
            )
        connection.commit()
    typer.echo(f"proposal {proposal_id} {'approved' if approve else 'rejected'} at the host")
    if applied is not None and applied.result_id:
        typer.echo(f"result_id: {applied.result_id}")
    if applied is not None and applied.code and applied.code_expires_at:
        typer.echo(
            f"enrolment code (single use, expires {applied.code_expires_at:%Y-%m-%dT%H:%M:%SZ}):"
            f" {applied.code}"
        )
    for issued in applied.codes if applied is not None else ():
        # An import that created staff: hand each their own code (single use, 24 hours).
        typer.echo(
            f"enrolment code for {issued.display_name} ({issued.principal_id}, line "
            f"{issued.line}, expires {issued.expires_at:%Y-%m-%dT%H:%M:%SZ}): {issued.code}"
        )


@proposals_app.command("approve")
def approve(
    proposal_id: str = typer.Argument(...),
    reason: str | None = typer.Option(None, help="Why, for the audit."),
    force: bool = typer.Option(
        False, "--force", help="Approve although the proposer saw the beneficiary's codes."
    ),
) -> None:
    """Approve a proposal at the host (prints the code if approving made one)."""
    _decide(proposal_id, approve=True, reason=reason, force=force)


@proposals_app.command("reject")
def reject(
    proposal_id: str = typer.Argument(...),
    reason: str | None = typer.Option(None, help="Why, for the audit."),
) -> None:
    _decide(proposal_id, approve=False, reason=reason)
