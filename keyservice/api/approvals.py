"""Proposals and their approval by a second person (docs/decisions/0004-admins-cannot-read.md).

A route that would give someone read rights stores a proposal (``propose``) and answers 202;
``POST /v1/proposals/{id}/approve`` by an independent second person applies it. Whoever may
not approve a proposal is told it does not exist, the same as for one that does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import Connection

from keyservice.api.proposal_models import ProposalDecision, ProposalPublic
from keyservice.api.schemas import Id
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog import proposals
from keyservice.catalog.people import caller_as_person
from keyservice.catalog.proposals import Applied, StoredProposal
from keyservice.deps import CurrentCaller, Db, State
from keyservice.policy.writes import ProposalAction, Verdict, may_approve
from keyservice.state import ServiceState

router = APIRouter()

NOT_FOUND = "no pending proposal with this id that you may decide"


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


def refuse_self_grant(
    db: Connection, state: ServiceState, caller: Caller, action: str, *, subject_id: str
) -> None:
    """Refuse (403, audited) a relationship the caller would record about themselves.

    Whoever records an assignment, guardianship, consent or court order must not be the one it
    gives rights to (docs/decisions/0004-admins-cannot-read.md).
    """
    if subject_id == caller.principal_id:
        refuse(
            db,
            state,
            caller,
            action,
            {"reason": "self_grant", "subject_id": subject_id},
            status=403,
            message="you cannot record a relationship that gives rights to yourself; "
            "ask another administrator or manager to record it",
        )


def _verdict(db: Connection, stored: StoredProposal, caller: Caller, now: datetime) -> Verdict:
    facts = proposals.facts(db, stored, now=now)
    if facts is None:
        return Verdict.deny("proposer_inactive")
    approver = caller_as_person(db, caller, child_id=stored.child_id, now=now)
    return may_approve(facts, approver)


@router.get("/v1/proposals", response_model=list[ProposalPublic])
def list_proposals(caller: CurrentCaller, db: Db, state: State) -> list[ProposalPublic]:
    """Pending proposals the caller may approve, then the caller's own recent proposals."""
    now = state.clock()
    mine = proposals.proposed_by(db, caller.principal_id)
    mine_ids = {p.proposal_id for p in mine}
    decidable = [
        p
        for p in proposals.pending(db, now=now)
        if p.proposal_id not in mine_ids and _verdict(db, p, caller, now).allowed
    ]
    answer = [public(db, p, now=now) for p in decidable + mine]
    db.commit()
    return answer


@router.get("/v1/proposals/{proposal_id}", response_model=ProposalPublic)
def get_proposal(proposal_id: Id, caller: CurrentCaller, db: Db, state: State) -> ProposalPublic:
    now = state.clock()
    stored = proposals.load(db, proposal_id)
    if stored is None or not (
        stored.proposed_by == caller.principal_id
        or (stored.state_at(now) == "pending" and _verdict(db, stored, caller, now).allowed)
    ):
        db.commit()
        raise HTTPException(status_code=404, detail="no proposal with this id that you may see")
    answer = public(db, stored, now=now)
    db.commit()
    return answer


@router.post("/v1/proposals/{proposal_id}/approve", response_model=ProposalPublic)
def approve(
    proposal_id: Id,
    caller: CurrentCaller,
    db: Db,
    state: State,
    body: ProposalDecision | None = None,
) -> ProposalPublic:
    """Apply the proposal, if the caller is an independent second person with standing."""
    now = state.clock()
    stored = proposals.load(db, proposal_id)
    verdict = (
        Verdict.deny("not_pending")
        if stored is None or stored.state_at(now) != "pending"
        else _verdict(db, stored, caller, now)
    )
    if stored is None or not verdict.allowed:
        refuse(
            db,
            state,
            caller,
            "proposal.approve",
            {"proposal_id": proposal_id, "reason": verdict.reason},
            status=404,
            message=NOT_FOUND,
        )
    seen = body.beneficiary_vouched_by if body else None
    if seen is not None and sorted(set(seen)) != proposals.vouched_for(db, stored, now=now):
        db.rollback()
        raise HTTPException(
            status_code=409,
            detail="who has seen this person's enrolment codes changed since you looked; "
            "look again before approving",
        )
    applied = proposals.apply(
        db, stored, approver_id=caller.principal_id, approver_device=caller.device_id, now=now
    )
    if not proposals.decide(
        db,
        stored,
        state="approved",
        by=caller.principal_id,
        device=caller.device_id,
        reason=body.reason if body else None,
        result_id=applied.result_id,
        now=now,
    ):
        db.rollback()
        raise HTTPException(status_code=409, detail="someone decided this proposal first")
    audit(
        db,
        state,
        caller,
        "proposal.approve",
        {
            "proposal_id": stored.proposal_id,
            "action": stored.action.value,
            "child_id": stored.child_id,
            "beneficiary_id": stored.beneficiary_id,
            "result_id": applied.result_id,
            "proposed_by": stored.proposed_by,
            "proposed_device": stored.proposed_device,
            "code_issued": applied.code is not None,
        },
    )
    change = proposals.CHANGE_ACTIONS[stored.action]
    audit(db, state, caller, change, proposals.change_detail(stored, applied))
    db.commit()
    decided = proposals.load(db, proposal_id)
    assert decided is not None
    answer = public(db, decided, now=now, applied=applied)
    db.commit()
    return answer


@router.post("/v1/proposals/{proposal_id}/reject", response_model=ProposalPublic)
def reject(
    proposal_id: Id,
    caller: CurrentCaller,
    db: Db,
    state: State,
    body: ProposalDecision | None = None,
) -> ProposalPublic:
    """Turn a proposal down (a possible approver) or withdraw it (its proposer)."""
    now = state.clock()
    stored = proposals.load(db, proposal_id)
    own = stored is not None and stored.proposed_by == caller.principal_id
    allowed = (
        stored is not None
        and stored.state_at(now) == "pending"
        and (own or _verdict(db, stored, caller, now).allowed)
    )
    if stored is None or not allowed:
        refuse(
            db,
            state,
            caller,
            "proposal.reject",
            {"proposal_id": proposal_id},
            status=404,
            message=NOT_FOUND,
        )
    outcome = "cancelled" if own else "rejected"
    if not proposals.decide(
        db,
        stored,
        state=outcome,
        by=caller.principal_id,
        device=caller.device_id,
        reason=body.reason if body else None,
        result_id=None,
        now=now,
    ):
        db.rollback()
        raise HTTPException(status_code=409, detail="someone decided this proposal first")
    audit(
        db,
        state,
        caller,
        f"proposal.{'cancel' if own else 'reject'}",
        {"proposal_id": stored.proposal_id, "action": stored.action.value},
    )
    db.commit()
    decided = proposals.load(db, proposal_id)
    assert decided is not None
    answer = public(db, decided, now=now)
    db.commit()
    return answer
