"""``carevault proposals …``: changes that give someone read rights, waiting for a second
person, and how every command that proposes one says so.

An assignment, a guardianship, a consent or disclosing court order recorded by staff, a new
admin, or a code for someone who already has a device or rights takes effect only when a
second, independent person approves it (docs/decisions/0004-admins-cannot-read.md).
"""

from __future__ import annotations

from typing import Annotated

import typer

from clients.output import emit_json, friendly, options, say, table
from clients.session import connect
from clients.times import shown
from vault.client import Proposal
from vault.errors import Conflict, NotFound

app = typer.Typer(
    help="Changes that give someone read rights, waiting for a second person's approval.",
    no_args_is_help=True,
)

# What each proposed change does, in words a manager reads.
WHAT: dict[str, str] = {
    "assignment.create": "assign staff to a child",
    "guardianship.create": "record a guardian",
    "consent.create": "record a consent",
    "court_order.create": "record a court order that discloses",
    "court_order.end": "end a court order that keeps a guardian out",
    "admin.create": "add an admin",
    "device.enrol": "an enrolment code for someone who already has a device or rights",
    "rooms.import": "room memberships or assignments that give read rights (one batch)",
}

# Who may approve, by action; a lead is a manager or DSL assigned to the child.
WHO_APPROVES: dict[str, str] = {
    "admin.create": "another admin (where you are the only admin: a manager or DSL)",
    "device.enrol": "another admin, a manager or a DSL",
    "rooms.import": "another admin",
}
CHILD_APPROVERS = "another admin, or the child's manager or DSL"

CANNOT_DECIDE = (
    "There is no pending proposal with this id that you may decide. Nobody may approve a "
    "proposal they made, one that is for themselves, or one from or for someone whose "
    "enrolment code they saw (or who saw theirs). Ask another admin, or the child's manager "
    "or DSL, to decide it."
)

CHANGED = (
    "Not approved: this proposal was decided by someone else, or who has seen the person's "
    "enrolment codes changed since it was shown. Look again with `carevault proposals show`."
)


def what(proposal: Proposal) -> str:
    return WHAT.get(proposal.action, proposal.action)


def summary(proposal: Proposal) -> dict[str, object]:
    """What a command that proposed a change prints with ``--json`` (not the request itself:
    a consent's purpose and an order's reference are sent, never printed back)."""
    return {
        "proposal_id": proposal.proposal_id,
        "action": proposal.action,
        "state": proposal.state,
        "child_id": proposal.child_id,
        "beneficiary_id": proposal.beneficiary_id,
        "proposed_at": proposal.proposed_at,
        "expires_at": proposal.expires_at,
    }


def report_proposed(ctx: typer.Context, proposal: Proposal) -> None:
    """Tell the user that their change is proposed, not made, and how it gets approved."""
    if options(ctx).json:
        emit_json(summary(proposal))
        return
    approvers = WHO_APPROVES.get(proposal.action, CHILD_APPROVERS)
    say(
        f"Proposed, waiting for approval: {what(proposal)} (proposal {proposal.proposal_id}).\n"
        f"Nothing changes until a second person approves it: {approvers}, with\n"
        f"  carevault proposals approve {proposal.proposal_id}\n"
        f"It lapses if nobody decides it by {shown(proposal.expires_at)}."
    )


def _for(proposal: Proposal) -> str | None:
    if proposal.beneficiary_id is not None:
        return proposal.beneficiary_id
    name = proposal.payload.get("display_name")
    return f"new: {name}" if name else None


@app.command("list")
@friendly
def list_proposals(ctx: typer.Context) -> None:
    """Proposals waiting for you to decide, then the ones you made."""
    found = connect(ctx).proposals()
    if options(ctx).json:
        emit_json(found)
        return
    table(
        "Proposals (`carevault proposals show ID` for the details)",
        ["proposal id", "what", "state", "lapses"],
        [(p.proposal_id, what(p), p.state, f"{p.expires_at:%Y-%m-%d}") for p in found],
    )


def _details(proposal: Proposal) -> list[str]:
    lines = [f"Proposal {proposal.proposal_id}: {what(proposal)} ({proposal.state})"]
    if proposal.child_id:
        lines.append(f"  child: {proposal.child_id}")
    if (person := _for(proposal)) is not None:
        lines.append(f"  for: {person}")
    if proposal.beneficiary_vouched_by:
        seen = ", ".join(proposal.beneficiary_vouched_by)
        lines.append(f"  their enrolment codes were also seen by: {seen}")
    lines.append(
        f"  proposed by {proposal.proposed_by} on {shown(proposal.proposed_at)}; "
        f"lapses {shown(proposal.expires_at)}"
    )
    if proposal.decided_at is not None:
        lines.append(
            f"  decided by {proposal.decided_by or 'the host'} on {shown(proposal.decided_at)}"
            + (f": {proposal.reason}" if proposal.reason else "")
        )
    if proposal.result_id:
        lines.append(f"  made: {proposal.result_id}")
    lines.extend(f"  {name}: {value}" for name, value in sorted(proposal.payload.items()))
    return lines


@app.command("show")
@friendly
def show(
    ctx: typer.Context, proposal_id: Annotated[str, typer.Argument(help="The proposal.")]
) -> None:
    """Everything a proposal holds: what to check against the paper before approving."""
    found = connect(ctx).proposal(proposal_id)
    if options(ctx).json:
        emit_json(found)
        return
    say("\n".join(_details(found)))


ReasonOption = Annotated[str | None, typer.Option(help="Why, for the audit.")]


@app.command("approve")
@friendly
def approve(
    ctx: typer.Context,
    proposal_id: Annotated[str, typer.Argument(help="The proposal.")],
    reason: ReasonOption = None,
) -> None:
    """Approve a proposal: the change it proposes is made now, as shown first. Approving a
    new admin or a new device's code prints that code, for you to hand over in person."""
    client = connect(ctx)
    try:
        # What is approved is what was shown: refused if someone else's code appeared since.
        shown_first = client.proposal(proposal_id)
        if not options(ctx).json:
            say("\n".join(_details(shown_first)))
        decided = client.approve(proposal_id, reason=reason, seen=shown_first)
    except NotFound as exc:
        raise NotFound(exc.status, exc.problem, CANNOT_DECIDE) from exc
    except Conflict as exc:
        raise Conflict(exc.status, exc.problem, CHANGED) from exc
    if options(ctx).json:
        emit_json(decided)
        return
    made = f" ({decided.result_id})" if decided.result_id else ""
    say(f"Approved: {what(decided)}{made}.")
    if decided.enrolment_code is not None:
        code = decided.enrolment_code
        say(
            f"Enrolment code: {code.code} (single use, valid until {shown(code.expires_at)}).\n"
            "Hand it to the person yourself: nobody else has seen it. They run "
            "`carevault enroll` with it."
        )
    if decided.enrolment_codes:
        # An import that created staff (decision 0027): shown here once, to the approver.
        # One line each, never folded: a code is there to be copied whole.
        say("Enrolment codes of the new staff (single use, shown once):")
        for c in decided.enrolment_codes:
            say(
                f"  line {c.line}: {c.display_name} ({c.principal_id}): {c.code.code} "
                f"(valid until {shown(c.code.expires_at)})"
            )
        say(
            "Hand each code to its person yourself: nobody else has seen them. They run "
            "`carevault enroll` with it."
        )


@app.command("reject")
@friendly
def reject(
    ctx: typer.Context,
    proposal_id: Annotated[str, typer.Argument(help="The proposal.")],
    reason: ReasonOption = None,
) -> None:
    """Turn a proposal down, or withdraw one you made."""
    try:
        decided = connect(ctx).reject(proposal_id, reason=reason)
    except NotFound as exc:
        raise NotFound(exc.status, exc.problem, CANNOT_DECIDE) from exc
    if options(ctx).json:
        emit_json(decided)
        return
    done = "Withdrawn" if decided.state == "cancelled" else "Rejected"
    say(f"{done}: {what(decided)} (proposal {decided.proposal_id}). Nothing was changed.")
