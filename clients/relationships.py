"""``carevault consent …``, ``carevault court-order …`` and ``carevault guardianship …``: the
written consents, court orders and guardianships that change who may read a child's records
(docs/POLICY.md).

Staff record consents and orders only for a child they are the manager or DSL of. One that
gives an outside recipient read rights is proposed, not made: a second person approves it
(``carevault proposals``); a guardian's own consent and an order restricting a guardian take
effect at once.

Categories, effects and the order of the two times are checked here before the key service is
asked, so a mistyped value costs no request (exit code 2). The purpose of a consent and the
reference of a court order are sent, never printed back.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer

from clients.approvals import report_proposed
from clients.output import friendly, report
from clients.session import connect
from clients.times import TIME_FORMATS, TIME_HELP, shown, utc
from vault.client import Proposal
from vault.format import Category

consent_app = typer.Typer(
    help="Record or withdraw a guardian's written consent to share records with an outside "
    "recipient.",
    no_args_is_help=True,
)
court_order_app = typer.Typer(
    help="Record or end a court order that restricts a guardian or discloses to an outside "
    "recipient.",
    no_args_is_help=True,
)
guardianship_app = typer.Typer(
    help="End a guardianship (it is kept, with the reason).", no_args_is_help=True
)


class Effect(StrEnum):
    """What a court order does to the principal it names."""

    RESTRICT_GUARDIAN = "restrict-guardian"
    DISCLOSE = "disclose"


# The API spells effects with underscores (docs/API.md); the command line, like every other
# option value here, with hyphens.
_API_EFFECT: dict[Effect, str] = {
    Effect.RESTRICT_GUARDIAN: "restrict_guardian",
    Effect.DISCLOSE: "disclose",
}


def _check_window(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise typer.BadParameter(
            f"--until ({shown(valid_until)}) must be after --from ({shown(valid_from)})",
            param_hint="'--until'",
        )


def _categories(chosen: list[Category]) -> list[str]:
    return list(dict.fromkeys(category.value for category in chosen))


ChildOption = Annotated[str, typer.Option("--child", help="The child's id.")]
CategoryOption = Annotated[
    list[Category],
    typer.Option(
        "--category",
        help="A category of records it covers (repeat for several).",
    ),
]
EvidenceOption = Annotated[
    str | None,
    typer.Option(
        "--evidence", help="The record holding the signed document (e.g. a scanned form)."
    ),
]
EndReasonOption = Annotated[
    str, typer.Option("--reason", help="Why it ends, for the record and the audit.")
]


# Given as help= rather than a docstring: Rich keeps a docstring's line breaks.
CONSENT_ADD_HELP = (
    "Record a guardian's written consent to share some categories of a child's records.\n\n"
    "The child's manager or DSL records a written consent they hold: it is proposed, and "
    "takes effect when a second person approves it. A guardian records their own consent at "
    "once. Unless you give --until, it lasts one year (the key service's default). A consent "
    "never reaches safeguarding records or records withheld from guardians."
)


@consent_app.command("add", help=CONSENT_ADD_HELP)
@friendly
def consent_add(
    ctx: typer.Context,
    child: ChildOption,
    given_by: Annotated[
        str,
        typer.Option(
            "--given-by", help="The guardian (with parental responsibility) who consented."
        ),
    ],
    recipient: Annotated[
        str, typer.Option("--recipient", help="The outside recipient records may be shared with.")
    ],
    category: CategoryOption,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Why the records are shared, as on the form.")
    ],
    valid_from: Annotated[
        datetime | None,
        typer.Option(
            "--from",
            formats=TIME_FORMATS,
            metavar="TIME",
            help=f"When the consent starts ({TIME_HELP}; default: now).",
        ),
    ] = None,
    valid_until: Annotated[
        datetime | None,
        typer.Option(
            "--until",
            formats=TIME_FORMATS,
            metavar="TIME",
            help=f"When the consent ends ({TIME_HELP}; default: one year after it starts, "
            "the key service's default).",
        ),
    ] = None,
    evidence: EvidenceOption = None,
    replaces: Annotated[
        str | None, typer.Option("--replaces", help="A consent this one corrects.")
    ] = None,
) -> None:
    start = None if valid_from is None else utc(valid_from)
    end = None if valid_until is None else utc(valid_until)
    _check_window(start, end)
    recorded = connect(ctx).record_consent(
        child_id=child,
        given_by=given_by,
        recipient_id=recipient,
        categories=_categories(category),
        purpose=purpose,
        valid_from=start,
        valid_to=end,
        evidence_record_id=evidence,
        replaces=replaces,
    )
    if isinstance(recorded, Proposal):
        report_proposed(ctx, recorded)
        return
    if end is not None:
        validity = f"valid until {shown(end)}"
    else:
        since = "today" if start is None else shown(start)
        validity = f"valid for one year from {since}, the key service's default"
    report(ctx, {"consent_id": recorded}, f"Consent recorded: {recorded} ({validity})")


@consent_app.command("withdraw")
@friendly
def consent_withdraw(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Argument(help="The consent to withdraw.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record.")] = None,
) -> None:
    """Withdraw a consent now: records are no longer shared on it."""
    connect(ctx).withdraw_consent(consent_id, reason=reason)
    report(
        ctx, {"consent_id": consent_id, "withdrawn": True}, f"Consent {consent_id} is withdrawn."
    )


@court_order_app.command("add")
@friendly
def court_order_add(
    ctx: typer.Context,
    child: ChildOption,
    effect: Annotated[
        Effect,
        typer.Option(
            "--effect",
            help="restrict-guardian: the guardian named by --subject may not read these "
            "categories while the order is in force. disclose: the basis on which staff may share "
            "them with the outside recipient named by --subject (carevault shares create).",
        ),
    ],
    subject: Annotated[
        str, typer.Option("--subject", help="The guardian or outside recipient it names.")
    ],
    category: CategoryOption,
    reference: Annotated[
        str, typer.Option("--reference", help="The court's reference for the order.")
    ],
    valid_from: Annotated[
        datetime,
        typer.Option(
            "--from", formats=TIME_FORMATS, metavar="TIME", help=f"When it starts ({TIME_HELP})."
        ),
    ],
    valid_until: Annotated[
        datetime,
        typer.Option(
            "--until", formats=TIME_FORMATS, metavar="TIME", help=f"When it ends ({TIME_HELP})."
        ),
    ],
    evidence: EvidenceOption = None,
    replaces: Annotated[
        str | None, typer.Option("--replaces", help="A court order this one corrects.")
    ] = None,
) -> None:
    """Record a court order about a child: its manager or DSL only. One that restricts a
    guardian takes effect at once; one that discloses waits for a second person's approval."""
    start, end = utc(valid_from), utc(valid_until)
    _check_window(start, end)
    recorded = connect(ctx).record_court_order(
        child_id=child,
        effect=_API_EFFECT[effect],
        subject_id=subject,
        categories=_categories(category),
        reference=reference,
        valid_from=start,
        valid_to=end,
        evidence_record_id=evidence,
        replaces=replaces,
    )
    if isinstance(recorded, Proposal):
        report_proposed(ctx, recorded)
        return
    report(
        ctx,
        {"court_order_id": recorded},
        f"Court order recorded: {recorded} (in force from {shown(start)} until {shown(end)})",
    )


@court_order_app.command("end")
@friendly
def court_order_end(
    ctx: typer.Context,
    court_order_id: Annotated[str, typer.Argument(help="The court order.")],
    reason: EndReasonOption,
) -> None:
    """End a court order now (the child's manager or DSL). Ending one that keeps a guardian
    out gives them their rights back, so that waits for a second person's approval."""
    proposal = connect(ctx).end_court_order(court_order_id, reason=reason)
    if proposal is not None:
        report_proposed(ctx, proposal)
        return
    report(
        ctx,
        {"court_order_id": court_order_id, "ended": True},
        f"Court order {court_order_id} has ended.",
    )


@guardianship_app.command("end")
@friendly
def guardianship_end(
    ctx: typer.Context,
    guardianship_id: Annotated[str, typer.Argument(help="The guardianship.")],
    reason: EndReasonOption,
) -> None:
    """End a guardianship now (an admin, or the child's manager or DSL)."""
    connect(ctx).end_guardianship(guardianship_id, reason=reason)
    report(
        ctx,
        {"guardianship_id": guardianship_id, "ended": True},
        f"Guardianship {guardianship_id} has ended.",
    )
