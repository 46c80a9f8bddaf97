"""Children: created by an admin (with their first key), listed to whoever is related to
them, and their keys rotated by an admin."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from keyservice.api.changes import refusals
from keyservice.api.retention_models import ChildDatesPublic, ChildDatesSet
from keyservice.api.schemas import ChildCreate, ChildCreated, ChildPublic, Id, KeyRotated
from keyservice.audit.record import audit
from keyservice.catalog import children, retention
from keyservice.catalog.grants import child_exists
from keyservice.catalog.rotation import rotate_child_key
from keyservice.deps import AdminCaller, CurrentCaller, Db, State

router = APIRouter()


@router.post("/v1/admin/children", response_model=ChildCreated, status_code=201)
def create_child(body: ChildCreate, caller: AdminCaller, db: Db, state: State) -> ChildCreated:
    child_id = children.create_child(
        db, state.root, display_name=body.display_name, room=body.room, now=state.clock()
    )
    audit(db, state, caller, "child.create", {"child_id": child_id})
    db.commit()
    return ChildCreated(child_id=child_id)


@router.get("/v1/children", response_model=list[ChildPublic])
def list_children(caller: CurrentCaller, db: Db, state: State) -> list[ChildPublic]:
    """Children the caller has a current relationship with, and nobody else's."""
    related = children.related_children(db, caller.principal_id, now=state.clock())
    audit(db, state, caller, "children.list", {"count": len(related)})
    db.commit()
    return [
        ChildPublic(
            child_id=child.child_id,
            display_name=child.display_name,
            room=child.room,
            relation=child.relation,
        )
        for child in related
    ]


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


@router.post("/v1/children/{child_id}/dates", response_model=ChildDatesPublic)
def set_child_dates(
    child_id: Id, body: ChildDatesSet, caller: CurrentCaller, db: Db, state: State
) -> ChildDatesPublic:
    """The child's date of birth and leaving date, which retention rules rest on
    (decision 0019): set by an admin or by a manager or DSL of the child."""
    with refusals(db, state, caller):
        dates = retention.set_dates(
            db,
            caller,
            child_id,
            date_of_birth=body.date_of_birth,
            left_on=body.left_on,
            now=state.clock(),
        )
    audit(
        db,
        state,
        caller,
        "child.dates",
        {
            "child_id": child_id,
            "date_of_birth": str(dates.date_of_birth) if dates.date_of_birth else None,
            "left_on": str(dates.left_on) if dates.left_on else None,
        },
    )
    db.commit()
    return ChildDatesPublic(
        child_id=child_id, date_of_birth=dates.date_of_birth, left_on=dates.left_on
    )
