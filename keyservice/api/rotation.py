"""Rotation jobs over the API (decision 0017): an admin starts a root or child rotation (or
asks what one would change), and follows the jobs."""

from __future__ import annotations

from fastapi import APIRouter

from keyservice.api.rotation_models import (
    ChildKeyVersions,
    JobPublic,
    KeyVersionPublic,
    MinDecryptionVersion,
    RotationCreate,
    RotationStarted,
)
from keyservice.api.schemas import Id
from keyservice.audit.record import audit, refuse
from keyservice.catalog.grants import child_exists
from keyservice.catalog.jobs import (
    JobConflict,
    JobNotRunning,
    cancel,
    get_job,
    list_jobs,
    running_job,
)
from keyservice.catalog.rotation import (
    key_versions,
    set_min_decryption_version,
    start_child_rotation,
    start_rewrap,
    start_root_rotation,
    trim_child_key_versions,
)
from keyservice.deps import AdminCaller, Db, State
from keyservice.errors import InvalidChangeError

router = APIRouter()
NO_CHILD = "no child with this id"
NO_JOB = "no job with this id"


@router.post("/v1/admin/rotations", response_model=RotationStarted, status_code=202)
def start_rotation(
    body: RotationCreate, caller: AdminCaller, db: Db, state: State
) -> RotationStarted:
    """Start a root or child rotation job, or a child's rewrap job (the runner picks it up
    at once), or with ``dry_run`` count what it would change and change nothing."""
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
        elif body.kind == "rewrap":
            assert body.child_id is not None
            started = start_rewrap(
                db,
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
def job(job_id: Id, caller: AdminCaller, db: Db, state: State) -> JobPublic:
    """One job; an unknown id is refused and audited, as cancelling one is."""
    found = get_job(db, job_id)
    db.rollback()
    if found is None:
        refuse(
            db,
            state,
            caller,
            "rotation.show",
            {"job_id": job_id, "reason": "unknown"},
            status=404,
            message=NO_JOB,
        )
    return JobPublic.of(found)


@router.post("/v1/admin/jobs/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: Id, caller: AdminCaller, db: Db, state: State) -> JobPublic:
    """Cancel a running job: it stops after the batch in flight (which is undone), every wrap
    stays openable (old versions stay decrypt-only), and its key is free for a new job. A job
    that has ended, or none with this id: refused, audited, nothing changed."""
    detail: dict[str, object] = {"job_id": job_id}
    try:
        cancelled = cancel(db, job_id, now=state.clock(), by=caller.principal_id)
    except LookupError:
        refuse(db, state, caller, "rotation.cancel", detail, status=404, message=NO_JOB)
    except JobNotRunning as exc:
        refuse(
            db,
            state,
            caller,
            "rotation.cancel",
            {**detail, "reason": "not_running", "job_state": exc.state},
            status=409,
            message=f"job {job_id} is {exc.state}, not running: nothing to cancel",
        )
    audit(
        db,
        state,
        caller,
        "rotation.cancel",
        {**detail, "kind": cancelled.kind, "target": cancelled.target, "done": cancelled.done},
    )
    db.commit()
    return JobPublic.of(cancelled)


@router.get("/v1/admin/children/{child_id}/key-versions", response_model=ChildKeyVersions)
def child_key_versions(child_id: Id, caller: AdminCaller, db: Db, state: State) -> ChildKeyVersions:
    """Each key version of the child: its state and how many wraps still use it."""
    if not child_exists(db, child_id):
        refuse(
            db,
            state,
            caller,
            "child_key.versions",
            {"child_id": child_id},
            status=404,
            message=NO_CHILD,
        )
    minimum, versions = key_versions(db, child_id)
    db.rollback()
    return ChildKeyVersions(
        child_id=child_id,
        min_decryption_version=minimum,
        versions=[KeyVersionPublic(version=v, state=s, wraps=n) for v, s, n in versions],
    )


@router.put("/v1/admin/children/{child_id}/min-decryption-version", response_model=ChildKeyVersions)
def set_min_decryption(
    child_id: Id, body: MinDecryptionVersion, caller: AdminCaller, db: Db, state: State
) -> ChildKeyVersions:
    """Versions below ``version`` are no longer needed (refused while a wrap uses one)."""
    detail = {"child_id": child_id, "version": body.version}
    if not child_exists(db, child_id):
        refuse(db, state, caller, "child_key.min_version", detail, status=404, message=NO_CHILD)
    try:
        set_min_decryption_version(db, child_id=child_id, version=body.version)
    except InvalidChangeError as exc:
        refuse(db, state, caller, "child_key.min_version", detail, status=409, message=str(exc))
    audit(db, state, caller, "child_key.min_version", detail)
    db.commit()
    return child_key_versions(child_id, caller, db, state)


@router.post("/v1/admin/children/{child_id}/trim-key-versions", response_model=ChildKeyVersions)
def trim_key_versions(child_id: Id, caller: AdminCaller, db: Db, state: State) -> ChildKeyVersions:
    """Destroy the versions below the minimum decryption version; refused while any wrap
    still needs one of them."""
    detail: dict[str, object] = {"child_id": child_id}
    if not child_exists(db, child_id):
        refuse(db, state, caller, "child_key.trim", detail, status=404, message=NO_CHILD)
    try:
        destroyed = trim_child_key_versions(db, child_id=child_id)
    except InvalidChangeError as exc:
        refuse(db, state, caller, "child_key.trim", detail, status=409, message=str(exc))
    audit(db, state, caller, "child_key.trim", {**detail, "destroyed": destroyed})
    db.commit()
    state.child_keys.forget(child_id)
    return child_key_versions(child_id, caller, db, state)
