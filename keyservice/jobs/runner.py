"""The job runner: claims unfinished rotation jobs and runs them batch by batch.

Every instance runs one, from the application's lifespan: each round (every
``CAREVAULT_JOB_POLL_SECONDS``) it claims the running jobs nobody holds (or whose holder's
lease ran out: a process killed mid-job) and runs them to their end, one at a time, in a
worker thread. Each batch is one transaction that moves its rows, counts them and renews the
lease, so a kill loses at most the batch in flight, and the next holder starts where the
last commit left off. After each batch the runner pauses as long as the batch took
(``CAREVAULT_JOB_YIELD`` times that), so that releases and uploads on the same instance get
the process and, on SQLite, the one writer between batches. A child job unwraps each of the
child's key versions once per run, not per batch. A job whose wraps cannot be opened fails
(recorded, audited); any other error (the database, the KMS unreachable) leaves it to be
claimed again once the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import timedelta

from sqlalchemy import Connection

from keyservice.audit.chain import AuditEvent
from keyservice.audit.record import append_event
from keyservice.catalog.jobs import CHILD_KINDS, Job, advance, claim, claimable, finish, get_job
from keyservice.catalog.rotation import child_job_keys, child_rotation_batch, root_rotation_batch
from keyservice.errors import KeyUnwrapError
from keyservice.ids import new_id
from keyservice.state import ServiceState

log = logging.getLogger("keyservice.jobs")
# Child key versions per root batch: each is a provider call (a KMS round trip).
ROOT_BATCH = 200
STOP_WAIT_S = 10.0


class JobRunner:
    """One instance's runner; ``owner`` names it in the jobs' leases."""

    def __init__(self, state: ServiceState, *, owner: str | None = None) -> None:
        self._state = state
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop after the batch in flight; the job stays claimable by the next holder."""
        self._stop.set()

    def round(self) -> None:
        """Run every claimable job; a failure is logged, not raised."""
        try:
            with self._state.engine.connect() as db:
                waiting = claimable(db, now=self._state.clock())
                db.rollback()
            for job_id in waiting:
                if self._stop.is_set():
                    return
                self.run(job_id)
        except Exception:
            log.warning("rotation jobs: round failed; the next round tries again", exc_info=True)

    def run(self, job_id: str) -> Job | None:
        """Claim ``job_id`` and run it to its end; the job as it ended, or None if another
        instance holds it, it stopped early, or it must be retried."""
        state = self._state
        lease = timedelta(seconds=state.settings.job_lease_seconds)
        with state.engine.connect() as db:
            if not claim(db, job_id, owner=self.owner, now=state.clock(), lease=lease):
                db.rollback()
                return None
            db.commit()
            job = get_job(db, job_id)
            db.rollback()
        assert job is not None
        try:
            step = self._step(job)
            pause = state.settings.job_yield
            while not self._stop.is_set():
                began = time.perf_counter()
                with state.engine.connect() as db:
                    count, cursor = step(db)
                    now = state.clock()
                    if count == 0:
                        if not finish(db, job_id, now=now):
                            # Cancelled meanwhile: it has ended already.
                            db.rollback()
                            return get_job_now(state, job_id)
                        self._audit(db, job, "allow", {})
                        db.commit()
                        if job.kind in CHILD_KINDS and job.target:
                            state.child_keys.forget(job.target)
                        return get_job_now(state, job_id)
                    if not advance(
                        db,
                        job_id,
                        owner=self.owner,
                        count=count,
                        cursor=cursor,
                        now=now,
                        lease=lease,
                    ):
                        # Cancelled, or the lease lost to another instance: this batch is
                        # undone and the job left to whoever holds it (decision 0023).
                        db.rollback()
                        return None
                    db.commit()
                if pause > 0:
                    self._stop.wait((time.perf_counter() - began) * pause)
        except KeyUnwrapError:
            log.error("rotation job %s: a wrap cannot be opened; the job has failed", job_id)
            with state.engine.connect() as db:
                error = "a wrap could not be opened with its key version"
                if finish(db, job_id, now=state.clock(), error=error):
                    self._audit(db, job, "error", {"error": error})
                    db.commit()
                else:
                    db.rollback()
            return get_job_now(state, job_id)
        return None

    def _step(self, job: Job) -> Callable[[Connection], tuple[int, str | None]]:
        state = self._state
        batch = state.settings.job_batch_size
        if job.kind in CHILD_KINDS:
            assert job.target is not None and job.to_version is not None
            child_id, to_version = job.target, job.to_version
            with state.engine.connect() as db:
                keys = child_job_keys(db, state.root, child_id)
                db.rollback()

            def child_step(db: Connection) -> tuple[int, str | None]:
                return child_rotation_batch(
                    db, child_id=child_id, to_version=to_version, keys=keys, limit=batch
                )

            return child_step

        def root_step(db: Connection) -> tuple[int, str | None]:
            return root_rotation_batch(db, state.root, limit=min(batch, ROOT_BATCH)), None

        return root_step

    def _audit(self, db: Connection, job: Job, outcome: str, extra: dict[str, object]) -> None:
        append_event(
            db,
            self._state,
            AuditEvent(
                action="rotation.finish",
                outcome=outcome,
                detail={"job_id": job.job_id, "kind": job.kind, "target": job.target, **extra},
            ),
        )


def get_job_now(state: ServiceState, job_id: str) -> Job | None:
    with state.engine.connect() as db:
        job = get_job(db, job_id)
        db.rollback()
    return job


@asynccontextmanager
async def jobs_on_time(
    state: ServiceState, *, within: AbstractAsyncContextManager[None], runner: JobRunner
) -> AsyncIterator[None]:
    """Run ``within`` (the application's other timers) and the runner's rounds while the
    block runs; at its end, stop after the batch in flight."""
    async with within:
        task = asyncio.create_task(_rounds(state, runner))
        try:
            yield
        finally:
            runner.stop()
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


async def _rounds(state: ServiceState, runner: JobRunner) -> None:
    while True:
        # Shielded: a round in its thread finishes its batch even when the task is cancelled.
        await asyncio.shield(asyncio.to_thread(runner.round))
        await asyncio.sleep(state.settings.job_poll_seconds)
