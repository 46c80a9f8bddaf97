"""Children and the relationships release decisions rest on: assignments, guardianships,
consents and court orders. Every change is validated and audited."""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel
from sqlalchemy import Connection, insert, or_, select

from keyservice.api.approvals import propose, refuse_self_grant
from keyservice.api.proposal_models import EndRequest, ProposalPublic, WithdrawRequest
from keyservice.api.schemas import (
    AssignmentCreate,
    ChildCreate,
    ChildCreated,
    ChildPublic,
    ConsentCreate,
    ConsentCreated,
    CourtOrderCreate,
    CourtOrderCreated,
    GuardianshipCreate,
    Id,
    KeyRotated,
)
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog.child_keys import create_child_key
from keyservice.catalog.grants import (
    add_consent,
    add_court_order,
    check_consent,
    check_court_order,
    child_exists,
    current_consent_child,
    current_court_order,
    current_guardianship_child,
    end_assignment,
    end_court_order,
    end_guardianship,
    is_guardian,
    kind_of,
    let_back_in,
    window,
    withdraw_consent,
)
from keyservice.catalog.people import caller_as_person
from keyservice.catalog.rotation import rotate_child_key
from keyservice.db.tables import (
    assignments,
    children,
    consents,
    court_orders,
    guardianships,
)
from keyservice.deps import AdminCaller, CurrentCaller, Db, State
from keyservice.ids import new_id
from keyservice.policy.writes import ProposalAction, may_record_for_child
from keyservice.state import ServiceState

router = APIRouter()

NO_STANDING_CHILD = "no child with this id for which you may record this"


def _lead_of(db: Connection, state: ServiceState, caller: Caller, child_id: str) -> bool:
    person = caller_as_person(db, caller, child_id=child_id, now=state.clock())
    return may_record_for_child(person)


def _refuse_without_standing(
    db: Connection, state: ServiceState, caller: Caller, action: str, detail: dict[str, str]
) -> NoReturn:
    """The same 404 whether the child (or the order, or the guardian) exists or not."""
    refuse(
        db,
        state,
        caller,
        action,
        {**detail, "reason": "no_standing"},
        status=404,
        message=NO_STANDING_CHILD,
    )


def _payload(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(mode="json")


@router.post("/v1/admin/children", response_model=ChildCreated, status_code=201)
def create_child(body: ChildCreate, caller: AdminCaller, db: Db, state: State) -> ChildCreated:
    now = state.clock()
    child_id = new_id()
    db.execute(
        insert(children).values(
            child_id=child_id, display_name=body.display_name, room=body.room, created_at=now
        )
    )
    create_child_key(db, state.root, child_id=child_id, version=1, now=now)
    audit(db, state, caller, "child.create", {"child_id": child_id})
    db.commit()
    return ChildCreated(child_id=child_id)


@router.get("/v1/children", response_model=list[ChildPublic])
def list_children(caller: CurrentCaller, db: Db, state: State) -> list[ChildPublic]:
    """Children the caller has a current relationship with, and nobody else's."""
    now = state.clock()
    relation: dict[str, str] = {}
    for child_id, role in db.execute(
        select(assignments.c.child_id, assignments.c.role).where(
            assignments.c.staff_id == caller.principal_id,
            assignments.c.valid_from <= now,
            or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
        )
    ):
        relation[child_id] = f"assignment:{role}"
    for (child_id,) in db.execute(
        select(guardianships.c.child_id).where(
            guardianships.c.guardian_id == caller.principal_id, guardianships.c.ended_at.is_(None)
        )
    ):
        relation[child_id] = "guardian"
    for (child_id,) in db.execute(
        select(consents.c.child_id).where(
            consents.c.recipient_id == caller.principal_id,
            consents.c.valid_from <= now,
            consents.c.valid_to > now,
            consents.c.withdrawn_at.is_(None),
        )
    ):
        relation.setdefault(child_id, "consent")
    for (child_id,) in db.execute(
        select(court_orders.c.child_id).where(
            court_orders.c.subject_id == caller.principal_id,
            court_orders.c.effect == "disclose",
            court_orders.c.valid_from <= now,
            court_orders.c.valid_to > now,
        )
    ):
        relation.setdefault(child_id, "court_order")
    rows = db.execute(
        select(children.c.child_id, children.c.display_name, children.c.room)
        .where(children.c.child_id.in_(relation))
        .order_by(children.c.display_name)
    ).all()
    audit(db, state, caller, "children.list", {"count": len(rows)})
    db.commit()
    return [
        ChildPublic(
            child_id=row.child_id,
            display_name=row.display_name,
            room=row.room,
            relation=relation[row.child_id],
        )
        for row in rows
    ]


@router.post("/v1/admin/assignments", response_model=ProposalPublic, status_code=202)
def create_assignment(
    body: AssignmentCreate, caller: AdminCaller, db: Db, state: State
) -> ProposalPublic:
    """Propose an assignment; it takes effect when a second person approves it."""
    refuse_self_grant(db, state, caller, "assignment.create", subject_id=body.staff_id)
    window(body.valid_from, body.valid_to, now=state.clock())
    if kind_of(db, body.staff_id) != "staff":
        raise HTTPException(status_code=422, detail="staff_id is not an active staff member")
    if not child_exists(db, body.child_id):
        raise HTTPException(status_code=422, detail="child_id is not a known child")
    return propose(
        db,
        state,
        caller,
        action=ProposalAction.ASSIGNMENT_CREATE,
        payload=_payload(body),
        child_id=body.child_id,
        beneficiary_id=body.staff_id,
    )


@router.post("/v1/admin/assignments/{assignment_id}/end", status_code=204)
def end_assignment_route(assignment_id: Id, caller: AdminCaller, db: Db, state: State) -> None:
    if not end_assignment(db, assignment_id, now=state.clock()):
        raise HTTPException(status_code=404, detail="no current assignment with this id")
    audit(db, state, caller, "assignment.end", {"assignment_id": assignment_id})
    db.commit()


@router.post("/v1/admin/guardianships", response_model=ProposalPublic, status_code=202)
def create_guardianship(
    body: GuardianshipCreate, caller: AdminCaller, db: Db, state: State
) -> ProposalPublic:
    """Propose a guardianship; it takes effect when a second person approves it."""
    refuse_self_grant(db, state, caller, "guardianship.create", subject_id=body.guardian_id)
    if kind_of(db, body.guardian_id) != "guardian":
        raise HTTPException(status_code=422, detail="guardian_id is not an active guardian")
    if not child_exists(db, body.child_id):
        raise HTTPException(status_code=422, detail="child_id is not a known child")
    return propose(
        db,
        state,
        caller,
        action=ProposalAction.GUARDIANSHIP_CREATE,
        payload=_payload(body),
        child_id=body.child_id,
        beneficiary_id=body.guardian_id,
    )


@router.post("/v1/guardianships/{guardianship_id}/end", status_code=204)
def end_guardianship_route(
    guardianship_id: Id, body: EndRequest, caller: CurrentCaller, db: Db, state: State
) -> None:
    """End a guardianship (an admin, or a manager or DSL of the child); never deleted."""
    child_id = current_guardianship_child(db, guardianship_id)
    if child_id is None or not (caller.has_role("admin") or _lead_of(db, state, caller, child_id)):
        refuse(
            db,
            state,
            caller,
            "guardianship.end",
            {"guardianship_id": guardianship_id},
            status=404,
            message="no current guardianship with this id that you may end",
        )
    end_guardianship(
        db, guardianship_id, by=caller.principal_id, reason=body.reason, now=state.clock()
    )
    audit(
        db,
        state,
        caller,
        "guardianship.end",
        {"guardianship_id": guardianship_id, "child_id": child_id},
    )
    db.commit()


@router.post(
    "/v1/consents",
    response_model=ConsentCreated | ProposalPublic,
    status_code=201,
    responses={202: {"model": ProposalPublic, "description": "waiting for a second person"}},
)
def create_consent(
    body: ConsentCreate, caller: CurrentCaller, db: Db, state: State, response: Response
) -> ConsentCreated | ProposalPublic:
    """A guardian records their own consent at once; the child's manager or DSL records a
    written consent they hold, which a second person approves."""
    now = state.clock()
    own = caller.kind == "guardian" and is_guardian(
        db, guardian_id=caller.principal_id, child_id=body.child_id
    )
    if not own and not _lead_of(db, state, caller, body.child_id):
        _refuse_without_standing(db, state, caller, "consent.create", {"child_id": body.child_id})
    refuse_self_grant(db, state, caller, "consent.create", subject_id=body.recipient_id)
    if own and body.given_by != caller.principal_id:
        raise HTTPException(status_code=422, detail="a guardian records only their own consent")
    fields = {
        "child_id": body.child_id,
        "given_by": body.given_by,
        "recipient_id": body.recipient_id,
        "categories": sorted({c.value for c in body.categories}),
    }
    if not own:
        check_consent(
            db,
            child_id=body.child_id,
            given_by=body.given_by,
            recipient_id=body.recipient_id,
            replaces=body.replaces,
        )
        window(body.valid_from, body.valid_to, now=now)
        response.status_code = 202
        return propose(
            db,
            state,
            caller,
            action=ProposalAction.CONSENT_CREATE,
            payload=_payload(body),
            child_id=body.child_id,
            beneficiary_id=body.recipient_id,
        )
    consent_id = add_consent(
        db,
        child_id=body.child_id,
        given_by=body.given_by,
        recipient_id=body.recipient_id,
        categories=fields["categories"],
        purpose=body.purpose,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        evidence_record_id=body.evidence_record_id,
        replaces=body.replaces,
        by=caller.principal_id,
        now=now,
    )
    audit(db, state, caller, "consent.create", {"consent_id": consent_id, **fields})
    db.commit()
    return ConsentCreated(consent_id=consent_id)


@router.post("/v1/consents/{consent_id}/withdraw", status_code=204)
def withdraw_consent_route(
    consent_id: Id,
    caller: CurrentCaller,
    db: Db,
    state: State,
    body: WithdrawRequest | None = None,
) -> None:
    """Withdrawn by a guardian of the child or its manager or DSL; effective at once."""
    child_id = current_consent_child(db, consent_id)
    allowed = child_id is not None and (
        is_guardian(db, guardian_id=caller.principal_id, child_id=child_id)
        or _lead_of(db, state, caller, child_id)
    )
    if child_id is None or not allowed:
        refuse(
            db,
            state,
            caller,
            "consent.withdraw",
            {"consent_id": consent_id},
            status=404,
            message="no current consent with this id that you may withdraw",
        )
    withdraw_consent(
        db,
        consent_id,
        by=caller.principal_id,
        reason=body.reason if body else None,
        now=state.clock(),
    )
    audit(db, state, caller, "consent.withdraw", {"consent_id": consent_id, "child_id": child_id})
    db.commit()


@router.post(
    "/v1/court-orders",
    response_model=CourtOrderCreated | ProposalPublic,
    status_code=201,
    responses={202: {"model": ProposalPublic, "description": "waiting for a second person"}},
)
def create_court_order(
    body: CourtOrderCreate, caller: CurrentCaller, db: Db, state: State, response: Response
) -> CourtOrderCreated | ProposalPublic:
    """Recorded by the child's manager or DSL. An order that restricts a guardian takes
    effect at once; one that discloses to an outside recipient waits for a second person."""
    if not _lead_of(db, state, caller, body.child_id):
        _refuse_without_standing(
            db, state, caller, "court_order.create", {"child_id": body.child_id}
        )
    refuse_self_grant(db, state, caller, "court_order.create", subject_id=body.subject_id)
    now = state.clock()
    check_court_order(
        db,
        child_id=body.child_id,
        effect=body.effect,
        subject_id=body.subject_id,
        replaces=body.replaces,
    )
    window(body.valid_from, body.valid_to, now=now)
    # Disclosing gives the recipient rights; a correction that keeps a guardian out of less
    # than the order it replaces gives that guardian rights back.
    regains = let_back_in(
        db,
        replaces=body.replaces,
        effect=body.effect,
        subject_id=body.subject_id,
        categories=[c.value for c in body.categories],
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        now=now,
    )
    if body.effect == "disclose" or regains is not None:
        response.status_code = 202
        return propose(
            db,
            state,
            caller,
            action=ProposalAction.COURT_ORDER_CREATE,
            payload=_payload(body),
            child_id=body.child_id,
            beneficiary_id=body.subject_id if body.effect == "disclose" else regains,
        )
    court_order_id = add_court_order(
        db,
        child_id=body.child_id,
        effect=body.effect,
        subject_id=body.subject_id,
        categories=[c.value for c in body.categories],
        reference=body.reference,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        evidence_record_id=body.evidence_record_id,
        replaces=body.replaces,
        by=caller.principal_id,
        now=now,
    )
    audit(
        db,
        state,
        caller,
        "court_order.create",
        {
            "court_order_id": court_order_id,
            "child_id": body.child_id,
            "effect": body.effect,
            "subject_id": body.subject_id,
            "categories": sorted({c.value for c in body.categories}),
        },
    )
    db.commit()
    return CourtOrderCreated(court_order_id=court_order_id)


@router.post(
    "/v1/court-orders/{court_order_id}/end",
    status_code=204,
    responses={202: {"model": ProposalPublic, "description": "waiting for a second person"}},
)
def end_court_order_route(
    court_order_id: Id, body: EndRequest, caller: CurrentCaller, db: Db, state: State
) -> Response:
    """End an order (the child's manager or DSL, with a reason). Ending one that keeps a
    guardian out gives that guardian their rights back, so it waits for a second person."""
    current = current_court_order(db, court_order_id)
    if current is None or not _lead_of(db, state, caller, current[0]):
        _refuse_without_standing(
            db, state, caller, "court_order.end", {"court_order_id": court_order_id}
        )
    child_id, effect = current
    if effect == "restrict_guardian":
        subject = db.execute(
            select(court_orders.c.subject_id).where(court_orders.c.court_order_id == court_order_id)
        ).scalar_one()
        proposal = propose(
            db,
            state,
            caller,
            action=ProposalAction.COURT_ORDER_END,
            payload={"court_order_id": court_order_id, "reason": body.reason},
            child_id=child_id,
            beneficiary_id=subject,
        )
        return Response(
            content=proposal.model_dump_json(), status_code=202, media_type="application/json"
        )
    end_court_order(
        db, court_order_id, by=caller.principal_id, reason=body.reason, now=state.clock()
    )
    audit(
        db,
        state,
        caller,
        "court_order.end",
        {"court_order_id": court_order_id, "child_id": child_id},
    )
    db.commit()
    return Response(status_code=204)


@router.post("/v1/admin/children/{child_id}/rotate-key", response_model=KeyRotated, status_code=200)
def rotate_child_key_route(child_id: Id, caller: AdminCaller, db: Db, state: State) -> KeyRotated:
    """New active key version for the child; the old one decrypt-only; wraps moved over."""
    if not child_exists(db, child_id):
        raise HTTPException(status_code=404, detail="no child with this id")
    rotated = rotate_child_key(db, state.root, child_id=child_id, now=state.clock())
    audit(
        db,
        state,
        caller,
        "child_key.rotate",
        {"child_id": child_id, "version": rotated.new_version, "rewrapped": rotated.rewrapped},
    )
    db.commit()
    state.child_keys.forget(child_id)
    return KeyRotated(child_id=child_id, version=rotated.new_version, rewrapped=rotated.rewrapped)
