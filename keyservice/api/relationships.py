"""Children and the relationships release decisions rest on: assignments, guardianships,
consents and court orders. Every change is validated and audited."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException
from sqlalchemy import Connection, insert, or_, select, update

from keyservice.api.schemas import (
    AssignmentCreate,
    AssignmentCreated,
    ChildCreate,
    ChildCreated,
    ChildPublic,
    ConsentCreate,
    ConsentCreated,
    CourtOrderCreate,
    CourtOrderCreated,
    GuardianshipCreate,
    GuardianshipCreated,
    Id,
    KeyRotated,
)
from keyservice.audit.record import audit, refuse
from keyservice.caller import Caller
from keyservice.catalog.child_keys import create_child_key
from keyservice.catalog.rotation import rotate_child_key
from keyservice.db.tables import (
    assignments,
    children,
    consents,
    court_orders,
    guardianships,
    principals,
)
from keyservice.deps import AdminCaller, CurrentCaller, Db, State
from keyservice.ids import new_id
from keyservice.state import ServiceState

router = APIRouter()

CONSENT_VALIDITY = timedelta(days=365)


def _kind_of(db: Connection, principal_id: str) -> str | None:
    kind: str | None = db.execute(
        select(principals.c.kind).where(
            principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    return kind


def _child_exists(db: Connection, child_id: str) -> bool:
    return (
        db.execute(select(children.c.child_id).where(children.c.child_id == child_id)).first()
        is not None
    )


def _is_guardian(db: Connection, *, guardian_id: str, child_id: str) -> bool:
    return (
        db.execute(
            select(guardianships.c.guardianship_id).where(
                guardianships.c.guardian_id == guardian_id,
                guardianships.c.child_id == child_id,
                guardianships.c.parental_responsibility.is_(True),
                guardianships.c.ended_at.is_(None),
            )
        ).first()
        is not None
    )


def _refuse_self_grant(
    db: Connection, state: ServiceState, caller: Caller, action: str, *, subject_id: str
) -> None:
    """Refuse (403, audited) a relationship the caller would record about themselves.

    Whoever records an assignment, guardianship, consent or court order must not be the one it
    gives rights to: otherwise the admin role, which gives no right to read (docs/POLICY.md),
    would be one request away from every record. See docs/decisions/0004-admins-cannot-read.md
    for what this does not prevent.
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


def _window(
    valid_from: datetime | None, valid_to: datetime | None, *, now: datetime
) -> tuple[datetime, datetime | None]:
    start = valid_from or now
    for moment in (start, valid_to):
        if moment is not None and moment.utcoffset() is None:
            raise HTTPException(status_code=422, detail="times must carry a UTC offset")
    if valid_to is not None and valid_to <= start:
        raise HTTPException(status_code=422, detail="valid_to must be after valid_from")
    return start, valid_to


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


@router.post("/v1/admin/assignments", response_model=AssignmentCreated, status_code=201)
def create_assignment(
    body: AssignmentCreate, caller: AdminCaller, db: Db, state: State
) -> AssignmentCreated:
    _refuse_self_grant(db, state, caller, "assignment.create", subject_id=body.staff_id)
    now = state.clock()
    start, end = _window(body.valid_from, body.valid_to, now=now)
    if _kind_of(db, body.staff_id) != "staff":
        raise HTTPException(status_code=422, detail="staff_id is not an active staff member")
    if not _child_exists(db, body.child_id):
        raise HTTPException(status_code=422, detail="child_id is not a known child")
    assignment_id = new_id()
    db.execute(
        insert(assignments).values(
            assignment_id=assignment_id,
            staff_id=body.staff_id,
            child_id=body.child_id,
            role=body.role,
            valid_from=start,
            valid_to=end,
        )
    )
    audit(
        db,
        state,
        caller,
        "assignment.create",
        {
            "assignment_id": assignment_id,
            "staff_id": body.staff_id,
            "child_id": body.child_id,
            "role": body.role,
        },
    )
    db.commit()
    return AssignmentCreated(assignment_id=assignment_id)


@router.post("/v1/admin/assignments/{assignment_id}/end", status_code=204)
def end_assignment(assignment_id: Id, caller: AdminCaller, db: Db, state: State) -> None:
    now = state.clock()
    done = db.execute(
        update(assignments)
        .where(
            assignments.c.assignment_id == assignment_id,
            or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
        )
        .values(valid_to=now)
    )
    if done.rowcount != 1:
        raise HTTPException(status_code=404, detail="no current assignment with this id")
    audit(db, state, caller, "assignment.end", {"assignment_id": assignment_id})
    db.commit()


@router.post("/v1/admin/guardianships", response_model=GuardianshipCreated, status_code=201)
def create_guardianship(
    body: GuardianshipCreate, caller: AdminCaller, db: Db, state: State
) -> GuardianshipCreated:
    _refuse_self_grant(db, state, caller, "guardianship.create", subject_id=body.guardian_id)
    if _kind_of(db, body.guardian_id) != "guardian":
        raise HTTPException(status_code=422, detail="guardian_id is not an active guardian")
    if not _child_exists(db, body.child_id):
        raise HTTPException(status_code=422, detail="child_id is not a known child")
    guardianship_id = new_id()
    db.execute(
        insert(guardianships).values(
            guardianship_id=guardianship_id,
            guardian_id=body.guardian_id,
            child_id=body.child_id,
            parental_responsibility=body.parental_responsibility,
            created_at=state.clock(),
        )
    )
    audit(
        db,
        state,
        caller,
        "guardianship.create",
        {
            "guardianship_id": guardianship_id,
            "guardian_id": body.guardian_id,
            "child_id": body.child_id,
            "parental_responsibility": body.parental_responsibility,
        },
    )
    db.commit()
    return GuardianshipCreated(guardianship_id=guardianship_id)


def _may_record_consent(db: Connection, caller: Caller, child_id: str) -> bool:
    return caller.has_role("admin", "manager", "dsl") or _is_guardian(
        db, guardian_id=caller.principal_id, child_id=child_id
    )


@router.post("/v1/consents", response_model=ConsentCreated, status_code=201)
def create_consent(
    body: ConsentCreate, caller: CurrentCaller, db: Db, state: State
) -> ConsentCreated:
    if not _may_record_consent(db, caller, body.child_id):
        refuse(
            db,
            state,
            caller,
            "consent.create",
            {"child_id": body.child_id},
            status=403,
            message="only staff managers, DSLs, admins or the child's guardians "
            "may record a consent",
        )
    _refuse_self_grant(db, state, caller, "consent.create", subject_id=body.recipient_id)
    if caller.kind == "guardian" and body.given_by != caller.principal_id:
        raise HTTPException(status_code=422, detail="a guardian records only their own consent")
    if not _is_guardian(db, guardian_id=body.given_by, child_id=body.child_id):
        raise HTTPException(
            status_code=422, detail="given_by is not a guardian with parental responsibility"
        )
    if _kind_of(db, body.recipient_id) != "external":
        raise HTTPException(status_code=422, detail="recipient_id is not an outside recipient")
    now = state.clock()
    start, end = _window(body.valid_from, body.valid_to, now=now)
    consent_id = new_id()
    db.execute(
        insert(consents).values(
            consent_id=consent_id,
            child_id=body.child_id,
            given_by=body.given_by,
            recipient_id=body.recipient_id,
            categories=" ".join(sorted({c.value for c in body.categories})),
            purpose=body.purpose,
            valid_from=start,
            valid_to=end or start + CONSENT_VALIDITY,
            evidence_record_id=body.evidence_record_id,
        )
    )
    audit(
        db,
        state,
        caller,
        "consent.create",
        {
            "consent_id": consent_id,
            "child_id": body.child_id,
            "given_by": body.given_by,
            "recipient_id": body.recipient_id,
            "categories": sorted({c.value for c in body.categories}),
        },
    )
    db.commit()
    return ConsentCreated(consent_id=consent_id)


@router.post("/v1/consents/{consent_id}/withdraw", status_code=204)
def withdraw_consent(consent_id: Id, caller: CurrentCaller, db: Db, state: State) -> None:
    child_id = db.execute(
        select(consents.c.child_id).where(
            consents.c.consent_id == consent_id, consents.c.withdrawn_at.is_(None)
        )
    ).scalar_one_or_none()
    if child_id is None or not _may_record_consent(db, caller, child_id):
        refuse(
            db,
            state,
            caller,
            "consent.withdraw",
            {"consent_id": consent_id},
            status=404,
            message="no current consent with this id that you may withdraw",
        )
    db.execute(
        update(consents)
        .where(consents.c.consent_id == consent_id)
        .values(withdrawn_at=state.clock())
    )
    audit(db, state, caller, "consent.withdraw", {"consent_id": consent_id, "child_id": child_id})
    db.commit()


@router.post("/v1/court-orders", response_model=CourtOrderCreated, status_code=201)
def create_court_order(
    body: CourtOrderCreate, caller: CurrentCaller, db: Db, state: State
) -> CourtOrderCreated:
    if not caller.has_role("admin", "manager", "dsl"):
        refuse(
            db,
            state,
            caller,
            "court_order.create",
            {"child_id": body.child_id},
            status=403,
            message="only staff managers, DSLs or admins may record court orders",
        )
    _refuse_self_grant(db, state, caller, "court_order.create", subject_id=body.subject_id)
    if not _child_exists(db, body.child_id):
        raise HTTPException(status_code=422, detail="child_id is not a known child")
    wanted = "external" if body.effect == "disclose" else "guardian"
    if _kind_of(db, body.subject_id) != wanted:
        raise HTTPException(
            status_code=422,
            detail=f"the subject of a {body.effect} order must be an active {wanted} principal",
        )
    start, end = _window(body.valid_from, body.valid_to, now=state.clock())
    assert end is not None
    court_order_id = new_id()
    db.execute(
        insert(court_orders).values(
            court_order_id=court_order_id,
            child_id=body.child_id,
            effect=body.effect,
            subject_id=body.subject_id,
            categories=" ".join(sorted({c.value for c in body.categories})),
            reference=body.reference,
            valid_from=start,
            valid_to=end,
            evidence_record_id=body.evidence_record_id,
        )
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


@router.post("/v1/admin/children/{child_id}/rotate-key", response_model=KeyRotated, status_code=200)
def rotate_child_key_route(child_id: Id, caller: AdminCaller, db: Db, state: State) -> KeyRotated:
    """New active key version for the child; the old one decrypt-only; wraps moved over."""
    if not _child_exists(db, child_id):
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
