"""Rotation jobs over the API (decision 0017): an admin starts a root or child rotation (or
asks what one would change), and follows the jobs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from keyservice.api.rotation_models import JobPublic, RotationCreate, RotationStarted
from keyservice.api.schemas import Id
from keyservice.audit.record import audit, refuse
from keyservice.catalog.grants import child_exists
from keyservice.catalog.jobs import JobConflict, get_job, list_jobs, running_job
from keyservice.catalog.rotation import start_child_rotation, start_root_rotation
from keyservice.deps import AdminCaller, Db, State

router = APIRouter()
NO_CHILD = "no child with this id"


@router.post("/v1/admin/rotations", response_model=RotationStarted, status_code=202)
def start_rotation(
    body: RotationCreate, caller: AdminCaller, db: Db, state: State
) -> RotationStarted:
    """Start a root or child rotation job (the runner picks it up at once), or with
    ``dry_run`` count what it would change and change nothing."""
    now = state.clock()
    detail = {"kind": body.kind, "child_id": body.child_id, "dry_run": body.dry_run}
    if body.child_id is not None and not child_exists(db, body.child_id):
        refuse(db, state, caller, "rotation.start", detail, status=404, message=NO_CHILD)
    try:
        if body.kind == "child":
            assert body.child_id is not None
            started = start_child_rotation(
                db,
                state.root,
                child_id=body.child_id,
                started_by=caller.principal_id,
                now=now,
                dry_run=body.dry_run,
            )
        else:
            started = start_root_rotation(
                db,
                state.root,
                kind="root",
                started_by=caller.principal_id,
                now=now,
                dry_run=body.dry_run,
            )
    except JobConflict:
        db.rollback()
        other = running_job(db, kind=body.kind, target=body.child_id)
        refuse(
            db,
            state,
            caller,
            "rotation.start",
            {**detail, "reason": "job_running", "running_job": other},
            status=409,
            message=f"a rotation job already runs on this key (job {other}): wait for it to "
            "finish (carevault admin jobs) and start again if still needed",
        )
    audit(
        db,
        state,
        caller,
        "rotation.start",
        {
            **detail,
            "job_id": started.job_id,
            "to_version": started.to_version,
            "total": started.total,
        },
    )
    db.commit()
    job = get_job(db, started.job_id) if started.job_id else None
    db.rollback()
    return RotationStarted(
        dry_run=body.dry_run,
        kind=body.kind,
        child_id=body.child_id,
        to_version=started.to_version,
        would_change=started.total,
        job=JobPublic.of(job) if job else None,
    )


@router.get("/v1/admin/jobs", response_model=list[JobPublic])
def jobs(caller: AdminCaller, db: Db) -> list[JobPublic]:
    """The newest hundred jobs, with progress, rate and ETA."""
    found = [JobPublic.of(job) for job in list_jobs(db)]
    db.rollback()
    return found


@router.get("/v1/admin/jobs/{job_id}", response_model=JobPublic)
def job(job_id: Id, caller: AdminCaller, db: Db) -> JobPublic:
    found = get_job(db, job_id)
    db.rollback()
    if found is None:
        raise HTTPException(status_code=404, detail="no job with this id")
    return JobPublic.of(found)
