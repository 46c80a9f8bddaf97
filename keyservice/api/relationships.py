"""Assignments, guardianships, consents and court orders: the relationships release decisions
rest on. Each route parses, asks keyservice/catalog/changes.py, and answers: 201 or 204 for
a change made now, 202 with a proposal for one that waits for a second person."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel

from keyservice.api.changes import carry_out, proposal_response, proposed, refusals
from keyservice.api.proposal_models import EndRequest, ProposalPublic, WithdrawRequest
from keyservice.api.schemas import (
    AssignmentCreate,
    ConsentCreate,
    ConsentCreated,
    CourtOrderCreate,
    CourtOrderCreated,
    GuardianshipCreate,
    Id,
)
from keyservice.audit.record import audit
from keyservice.catalog import changes
from keyservice.catalog.grants import end_assignment
from keyservice.deps import AdminCaller, CurrentCaller, Db, State

router = APIRouter()

WAITING: dict[int | str, dict[str, Any]] = {
    202: {"model": ProposalPublic, "description": "waiting for a second person"}
}


def _payload(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(mode="json")


@router.post("/v1/admin/assignments", response_model=ProposalPublic, status_code=202)
def create_assignment(
    body: AssignmentCreate, caller: AdminCaller, db: Db, state: State, response: Response
) -> ProposalPublic:
    """Propose an assignment; it takes effect when a second person approves it."""
    with refusals(db, state, caller):
        wanted = changes.propose_assignment(db, caller, _payload(body), now=state.clock())
    return proposed(db, state, caller, wanted, response)


@router.post("/v1/admin/assignments/{assignment_id}/end", status_code=204)
def end_assignment_route(assignment_id: Id, caller: AdminCaller, db: Db, state: State) -> None:
    if not end_assignment(db, assignment_id, now=state.clock()):
        raise HTTPException(status_code=404, detail="no current assignment with this id")
    audit(db, state, caller, "assignment.end", {"assignment_id": assignment_id})
    db.commit()


@router.post("/v1/admin/guardianships", response_model=ProposalPublic, status_code=202)
def create_guardianship(
    body: GuardianshipCreate, caller: AdminCaller, db: Db, state: State, response: Response
) -> ProposalPublic:
    """Propose a guardianship; it takes effect when a second person approves it."""
    with refusals(db, state, caller):
        wanted = changes.propose_guardianship(db, caller, _payload(body))
    return proposed(db, state, caller, wanted, response)


@router.post("/v1/guardianships/{guardianship_id}/end", status_code=204)
def end_guardianship_route(
    guardianship_id: Id, body: EndRequest, caller: CurrentCaller, db: Db, state: State
) -> None:
    """End a guardianship (an admin, or a manager or DSL of the child); never deleted."""
    with refusals(db, state, caller):
        made = changes.end_guardianship(
            db, caller, guardianship_id, reason=body.reason, now=state.clock()
        )
    carry_out(db, state, caller, made, Response())


@router.post(
    "/v1/consents",
    response_model=ConsentCreated | ProposalPublic,
    status_code=201,
    responses=WAITING,
)
def create_consent(
    body: ConsentCreate, caller: CurrentCaller, db: Db, state: State, response: Response
) -> ConsentCreated | ProposalPublic:
    """A guardian records their own consent at once; the child's manager or DSL records a
    written consent they hold, which a second person approves."""
    with refusals(db, state, caller):
        outcome = changes.record_consent(db, caller, _payload(body), now=state.clock())
    done = carry_out(db, state, caller, outcome, response)
    if isinstance(done, ProposalPublic):
        return done
    assert done.result_id is not None
    return ConsentCreated(consent_id=done.result_id)


@router.post("/v1/consents/{consent_id}/withdraw", status_code=204)
def withdraw_consent_route(
    consent_id: Id,
    caller: CurrentCaller,
    db: Db,
    state: State,
    body: WithdrawRequest | None = None,
) -> None:
    """Withdrawn by a guardian of the child or its manager or DSL; effective at once."""
    with refusals(db, state, caller):
        made = changes.withdraw_consent(
            db, caller, consent_id, reason=body.reason if body else None, now=state.clock()
        )
    carry_out(db, state, caller, made, Response())


@router.post(
    "/v1/court-orders",
    response_model=CourtOrderCreated | ProposalPublic,
    status_code=201,
    responses=WAITING,
)
def create_court_order(
    body: CourtOrderCreate, caller: CurrentCaller, db: Db, state: State, response: Response
) -> CourtOrderCreated | ProposalPublic:
    """Recorded by the child's manager or DSL. An order that restricts a guardian takes
    effect at once; one that discloses to an outside recipient, or a correction that keeps
    a guardian out of less, waits for a second person."""
    with refusals(db, state, caller):
        outcome = changes.record_court_order(db, caller, _payload(body), now=state.clock())
    done = carry_out(db, state, caller, outcome, response)
    if isinstance(done, ProposalPublic):
        return done
    assert done.result_id is not None
    return CourtOrderCreated(court_order_id=done.result_id)


@router.post("/v1/court-orders/{court_order_id}/end", status_code=204, responses=WAITING)
def end_court_order_route(
    court_order_id: Id, body: EndRequest, caller: CurrentCaller, db: Db, state: State
) -> Response:
    """End an order (the child's manager or DSL, with a reason). Ending one that keeps a
    guardian out gives that guardian their rights back, so it waits for a second person."""
    with refusals(db, state, caller):
        outcome = changes.end_court_order(
            db, caller, court_order_id, reason=body.reason, now=state.clock()
        )
    done = carry_out(db, state, caller, outcome, Response())
    if isinstance(done, ProposalPublic):
        return proposal_response(done)
    return Response(status_code=204)
