"""Rotation jobs as rows (decision 0017): recorded, claimed under a lease, advanced batch by
batch, finished once.

A job runs on one instance at a time: ``claim`` takes it if nobody holds it or its holder's
lease has run out (a process killed mid-job stops renewing it), and every batch renews the
lease in the same transaction as the batch's rows. One job per key: ``running_key`` is
unique while the job runs, so a second job on the same key fails to insert on every database
and instance, without a read-then-write race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, RowMapping, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from keyservice.db.tables import rotation_jobs
from keyservice.ids import new_id

RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
KINDS = ("root", "child", "migrate", "rewrap")
# Jobs that move one child's record key wraps (the others move child key versions).
CHILD_KINDS = ("child", "rewrap")


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    target: str | None
    state: str
    to_version: int | None
    total: int
    done: int
    cursor: str | None
    started_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Job:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


class JobConflict(Exception):
    """Another job runs on the same key."""


class JobNotRunning(Exception):
    """The job has ended already (done, failed or cancelled): nothing to cancel."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def running_key(kind: str, target: str | None) -> str:
    """What two jobs must not share while they run: the root key, or one child's key (a
    rotation and a rewrap of the same child share it)."""
    return f"child:{target}" if kind in CHILD_KINDS else "root"


def create_job(
    connection: Connection,
    *,
    kind: str,
    target: str | None,
    to_version: int | None,
    total: int,
    started_by: str | None,
    now: datetime,
    lease: tuple[str, timedelta] | None = None,
) -> str:
    """Record a running job (held by ``lease``'s owner if given, for the caller to run it
    itself); JobConflict if one runs on the same key already. Inside a savepoint, so the
    caller's transaction survives a conflict."""
    job_id = new_id()
    try:
        with connection.begin_nested():
            connection.execute(
                insert(rotation_jobs).values(
                    job_id=job_id,
                    kind=kind,
                    target=target,
                    state=RUNNING,
                    running_key=running_key(kind, target),
                    to_version=to_version,
                    total=total,
                    done=0,
                    started_by=started_by,
                    created_at=now,
                    updated_at=now,
                    lease_owner=lease[0] if lease else None,
                    lease_expires=now + lease[1] if lease else None,
                )
            )
    except IntegrityError as exc:
        raise JobConflict(running_key(kind, target)) from exc
    return job_id


def running_job(connection: Connection, *, kind: str, target: str | None) -> str | None:
    """The id of the job running on the key a new ``kind`` job on ``target`` would use."""
    return connection.execute(
        select(rotation_jobs.c.job_id).where(
            rotation_jobs.c.running_key == running_key(kind, target)
        )
    ).scalar_one_or_none()


def get_job(connection: Connection, job_id: str) -> Job | None:
    row = (
        connection.execute(select(rotation_jobs).where(rotation_jobs.c.job_id == job_id))
        .mappings()
        .one_or_none()
    )
    return None if row is None else Job.from_row(row)


def list_jobs(connection: Connection, *, limit: int = 100) -> list[Job]:
    """The newest jobs first."""
    rows = connection.execute(
        select(rotation_jobs).order_by(rotation_jobs.c.created_at.desc()).limit(limit)
    ).mappings()
    return [Job.from_row(row) for row in rows]


def claimable(connection: Connection, *, now: datetime) -> list[str]:
    """Running jobs nobody holds, or whose holder's lease has run out; oldest first."""
    return list(
        connection.execute(
            select(rotation_jobs.c.job_id)
            .where(
                rotation_jobs.c.state == RUNNING,
                or_(rotation_jobs.c.lease_expires.is_(None), rotation_jobs.c.lease_expires < now),
            )
            .order_by(rotation_jobs.c.created_at)
        ).scalars()
    )


def claim(
    connection: Connection, job_id: str, *, owner: str, now: datetime, lease: timedelta
) -> bool:
    """Take ``job_id`` for ``owner`` (or renew its lease); False if another holds it."""
    taken = connection.execute(
        update(rotation_jobs)
        .where(
            rotation_jobs.c.job_id == job_id,
            rotation_jobs.c.state == RUNNING,
            or_(
                rotation_jobs.c.lease_owner == owner,
                rotation_jobs.c.lease_expires.is_(None),
                rotation_jobs.c.lease_expires < now,
            ),
        )
        .values(lease_owner=owner, lease_expires=now + lease)
    )
    return taken.rowcount == 1


def advance(
    connection: Connection,
    job_id: str,
    *,
    owner: str,
    count: int,
    cursor: str | None,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Count a batch and renew the lease, in the batch's transaction; False (roll the batch
    back) if the lease was lost to another instance meanwhile."""
    moved = connection.execute(
        update(rotation_jobs)
        .where(
            rotation_jobs.c.job_id == job_id,
            rotation_jobs.c.state == RUNNING,
            rotation_jobs.c.lease_owner == owner,
        )
        .values(
            done=rotation_jobs.c.done + count,
            cursor=cursor,
            updated_at=now,
            lease_expires=now + lease,
        )
    )
    return moved.rowcount == 1


def finish(connection: Connection, job_id: str, *, now: datetime, error: str | None = None) -> bool:
    """End the running job (done, or failed with ``error``) and free its key for the next
    job; False if it was not running (cancelled meanwhile). A finished job's total is what it
    did: wraps that uploads in flight at its start added under the old version are counted as
    they are moved."""
    values: dict[str, object] = {
        "state": FAILED if error else DONE,
        "running_key": None,
        "finished_at": now,
        "updated_at": now,
        "lease_owner": None,
        "lease_expires": None,
        "error": error,
    }
    if error is None:
        values["total"] = rotation_jobs.c.done
    ended = connection.execute(
        update(rotation_jobs)
        .where(rotation_jobs.c.job_id == job_id, rotation_jobs.c.state == RUNNING)
        .values(**values)
    )
    return ended.rowcount == 1


def cancel(connection: Connection, job_id: str, *, now: datetime, by: str | None) -> Job:
    """Cancel a running job: it ends at once, its key is freed for a new job, and the batch
    in flight on whichever instance holds it finds the job no longer running when it counts
    itself and rolls back (decision 0023). Every wrap stays under the version it is under,
    each still live, so every wrap opens. LookupError if there is no such job, JobNotRunning
    if it has ended already; nothing is changed then."""
    found = get_job(connection, job_id)
    if found is None:
        raise LookupError(job_id)
    ended = connection.execute(
        update(rotation_jobs)
        .where(rotation_jobs.c.job_id == job_id, rotation_jobs.c.state == RUNNING)
        .values(
            state=CANCELLED,
            running_key=None,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires=None,
            error=f"cancelled by {by}" if by else "cancelled",
        )
    )
    if ended.rowcount != 1:
        # Ended between the read and the update (or before): report the state it ended in.
        again = get_job(connection, job_id)
        raise JobNotRunning(again.state if again else found.state)
    cancelled = get_job(connection, job_id)
    assert cancelled is not None
    return cancelled
