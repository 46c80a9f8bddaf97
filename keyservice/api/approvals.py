"""Proposals and their approval by a second person (docs/decisions/0004-admins-cannot-read.md).

A route that would give someone read rights stores a proposal (``propose``) and answers 202;
``POST /v1/proposals/{id}/approve`` by an independent second person applies it. Whoever may
not approve a proposal is told it does not exist, the same as for one that does not.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from sqlalchemy import Connection

from keyservice.api.changes import public
from keyservice.api.proposal_models import ProposalDecision, ProposalPublic
from keyservice.api.schemas import Id
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog import proposals
from keyservice.catalog.people import caller_as_person
from keyservice.catalog.proposals import StoredProposal
from keyservice.deps import CurrentCaller, Db, State
from keyservice.policy.writes import Verdict, may_approve

router = APIRouter()

NOT_FOUND = "no pending proposal with this id that you may decide"


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
        db,
        stored,
        approver_id=caller.principal_id,
        approver_device=caller.device_id,
        now=now,
        root=state.root,
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
            **({"codes_issued": len(applied.codes)} if applied.codes else {}),
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
