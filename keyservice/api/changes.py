"""What routers share to answer a change to who can read: refusals as audited HTTP answers,
proposals as 202s, and changes made now as audited commits. Not a router.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi import Response
from sqlalchemy import Connection

from keyservice.api.proposal_models import IssuedCodePublic, ProposalPublic
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog import proposals
from keyservice.catalog.changes import Made, Outcome, Propose
from keyservice.catalog.proposals import Applied, StoredProposal
from keyservice.errors import DeniedError
from keyservice.policy.writes import ProposalAction
from keyservice.state import ServiceState


@contextmanager
def refusals(db: Connection, state: ServiceState, caller: Caller) -> Iterator[None]:
    """Turn a ``DeniedError`` into an audited refusal (rolled back, then 404 or 403)."""
    try:
        yield
    except DeniedError as refused:
        refuse(
            db,
            state,
            caller,
            refused.action,
            refused.detail,
            status=refused.status,
            message=str(refused),
        )


def public(
    db: Connection, stored: StoredProposal, *, now: datetime, applied: Applied | None = None
) -> ProposalPublic:
    return ProposalPublic(
        beneficiary_vouched_by=proposals.vouched_for(db, stored, now=now),
        proposal_id=stored.proposal_id,
        action=stored.action.value,
        state=stored.state_at(now),  # type: ignore[arg-type]
        child_id=stored.child_id,
        beneficiary_id=stored.beneficiary_id,
        payload=stored.payload,
        proposed_by=stored.proposed_by,
        proposed_device=stored.proposed_device,
        proposed_at=stored.proposed_at,
        expires_at=stored.expires_at,
        decided_by=stored.decided_by,
        decided_device=stored.decided_device,
        decided_at=stored.decided_at,
        result_id=stored.result_id,
        reason=stored.reason,
        enrolment_code=applied.code if applied else None,
        code_expires_at=applied.code_expires_at if applied else None,
        enrolment_codes=[
            IssuedCodePublic(
                line=c.line,
                principal_id=c.principal_id,
                display_name=c.display_name,
                code=c.code,
                expires_at=c.expires_at,
            )
            for c in (applied.codes if applied else ())
        ],
    )


def propose(
    db: Connection,
    state: ServiceState,
    caller: Caller,
    *,
    action: ProposalAction,
    payload: Mapping[str, Any],
    child_id: str | None,
    beneficiary_id: str | None,
) -> ProposalPublic:
    """Store a proposal by ``caller``, audit it, commit, and return it (for a 202)."""
    now = state.clock()
    stored = proposals.propose(
        db,
        action=action,
        payload=payload,
        child_id=child_id,
        beneficiary_id=beneficiary_id,
        proposed_by=caller.principal_id,
        proposed_device=caller.device_id,
        now=now,
    )
    audit(
        db,
        state,
        caller,
        "proposal.create",
        {
            "proposal_id": stored.proposal_id,
            "action": action.value,
            "child_id": child_id,
            "beneficiary_id": beneficiary_id,
        },
    )
    answer = public(db, stored, now=now)
    db.commit()
    return answer


def carry_out(
    db: Connection, state: ServiceState, caller: Caller, outcome: Outcome, response: Response
) -> Made | ProposalPublic:
    """A proposal (answered 202) or the change made now (audited and committed)."""
    if isinstance(outcome, Propose):
        return proposed(db, state, caller, outcome, response)
    audit(db, state, caller, outcome.action, outcome.detail)
    db.commit()
    return outcome


def proposed(
    db: Connection, state: ServiceState, caller: Caller, wanted: Propose, response: Response
) -> ProposalPublic:
    """Store ``wanted`` as a proposal and answer 202 with it."""
    response.status_code = 202
    return propose(
        db,
        state,
        caller,
        action=wanted.action,
        payload=wanted.payload,
        child_id=wanted.child_id,
        beneficiary_id=wanted.beneficiary_id,
    )


def proposal_response(proposal: ProposalPublic) -> Response:
    """A 202 with the proposal, for routes that otherwise answer 204 with no body."""
    return Response(
        content=proposal.model_dump_json(), status_code=202, media_type="application/json"
    )
