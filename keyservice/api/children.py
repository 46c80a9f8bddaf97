"""Children: created by an admin (with their first key), listed to whoever is related to
them, and their keys rotated by an admin."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from keyservice.api.changes import refusals
from keyservice.api.retention_models import ChildDatesPublic, ChildDatesSet
from keyservice.api.schemas import ChildCreate, ChildCreated, ChildPublic, Id, KeyRotated
from keyservice.audit.record import audit, refuse
from keyservice.catalog import children, retention
from keyservice.catalog.grants import child_exists
from keyservice.catalog.jobs import CANCELLED, JobConflict
from keyservice.catalog.rotation import start_child_rotation
from keyservice.deps import AdminCaller, CurrentCaller, Db, State
from keyservice.jobs import JobRunner
from keyservice.jobs.runner import get_job_now

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
def rotate_child_key_route(
    child_id: Id, caller: AdminCaller, db: Db, state: State, request: Request
) -> KeyRotated:
    """New active key version for the child; the old one decrypt-only; wraps moved over by a
    rotation job this request runs to its end (POST /v1/admin/rotations returns at once)."""
    if not child_exists(db, child_id):
        refuse(
            db,
            state,
            caller,
            "child_key.rotate",
            {"child_id": child_id},
            status=404,
            message="no child with this id",
        )
    runner: JobRunner = request.app.state.jobs
    lease = timedelta(seconds=state.settings.job_lease_seconds)
    try:
        started = start_child_rotation(
            db,
            state.root,
            child_id=child_id,
            started_by=caller.principal_id,
            now=state.clock(),
            lease=(runner.owner, lease),
        )
    except JobConflict:
        refuse(
            db,
            state,
            caller,
            "child_key.rotate",
            {"child_id": child_id, "reason": "job_running"},
            status=409,
            message="a rotation job already runs on this child's key: wait for it to finish "
            "(carevault admin jobs)",
        )
    assert started.job_id is not None
    audit(
        db,
        state,
        caller,
        "child_key.rotate",
        {"child_id": child_id, "version": started.to_version, "job_id": started.job_id},
    )
    db.commit()
    state.child_keys.forget(child_id)
    job = runner.run(started.job_id)
    ended = job if job is not None else get_job_now(state, started.job_id)
    if ended is not None and ended.state == CANCELLED:
        refuse(
            db,
            state,
            caller,
            "child_key.rotate",
            {"child_id": child_id, "job_id": started.job_id, "reason": "cancelled"},
            status=409,
            message=f"rotation job {started.job_id} was cancelled while it ran "
            f"({ended.error}): version {started.to_version} is active, and wraps it had not "
            "moved stay under the older, decrypt-only version; move them with a rewrap job "
            "(carevault admin rewrap CHILD)",
        )
    rewrapped = job.done if job is not None else 0
    return KeyRotated(child_id=child_id, version=started.to_version, rewrapped=rewrapped)


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
