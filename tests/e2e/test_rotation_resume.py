"""A child rotation job survives ``kill -9`` of the key service (issue 15, part 2).

The service is a real process; a child's key is rotated over many wraps (written straight
into the catalog), the process is killed while the job is half done, and a restarted process
resumes it: it finishes with its done counter equal to its total, every wrap opens to the
record key it held, records release, and running the finished job again changes nothing.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, update

from keyservice.db.tables import rotation_jobs
from tests.keyservice.helpers import (
    admin_enrols,
    assign,
    bootstrap_admin,
    create_child,
    ok,
    put_record,
    release,
)
from tests.keyservice.wraps import add_wraps, opened, root_of, wraps_of
from tests.servers import KeyServiceFactory

pytestmark = pytest.mark.integration

WRAPS = 20_000
JOB_SETTINGS = {
    "CAREVAULT_JOB_BATCH_SIZE": "250",
    "CAREVAULT_JOB_LEASE_SECONDS": "2",
    "CAREVAULT_JOB_POLL_SECONDS": "0.2",
}


def job_row(engine: Engine, job_id: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            select(rotation_jobs).where(rotation_jobs.c.job_id == job_id)
        ).one()


def wait_for(engine: Engine, job_id: str, done: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        row = job_row(engine, job_id)
        if done(row) or time.monotonic() > deadline:
            return row
        time.sleep(0.01)


@pytest.mark.parametrize("flavour", ["embedded", "production"])
def test_a_child_rotation_killed_mid_job_resumes_and_finishes_once(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    service = keyservice_factory(flavour=flavour, extra_env=JOB_SETTINGS)
    engine = create_engine(service.env["CAREVAULT_DATABASE_URL"])
    admin = bootstrap_admin(service)
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    record = put_record(educator, child_ids=[child])
    root = root_of(service.env)
    made = add_wraps(engine, root, child_id=child, created_by=admin.principal_id, count=WRAPS)

    with admin.client() as http:
        started = ok(http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child}))
    job_id = started["job"]["job_id"]
    assert started["job"]["total"] == WRAPS + 1
    halfway = wait_for(engine, job_id, lambda row: row.done > 0)
    os.kill(service.pid, signal.SIGKILL)
    service.process.popen.wait(timeout=30)
    service.stop()
    killed = job_row(engine, job_id)
    assert killed.state == "running", "the job finished before the kill: raise WRAPS"
    assert 0 < halfway.done <= killed.done < killed.total
    moved = [r for r, (v, _) in wraps_of(engine, child).items() if v == 2]
    # Progress is stored with each batch: what was counted is what moved.
    assert len(moved) == killed.done

    restarted = keyservice_factory.start(service.env, port=service.port)
    statuses: list[str] = []
    while job_row(engine, job_id).state == "running":
        _, results = release(educator, [(record.record_id, 1)])
        statuses.append(results[(record.record_id, 1)]["status"])
    finished = job_row(engine, job_id)
    assert (finished.state, finished.done, finished.total) == ("done", WRAPS + 1, WRAPS + 1)
    assert finished.running_key is None and finished.error is None
    assert statuses and set(statuses) == {"granted"}
    after = wraps_of(engine, child)
    assert {v for v, _ in after.values()} == {2}
    assert opened(engine, root, child, made) == made
    response, results = release(educator, [(record.record_id, 1)])
    assert educator.open_key(response, results[(record.record_id, 1)]) == record.record_key

    # Run the finished job again: it finds nothing to move and changes nothing.
    with engine.begin() as connection:
        connection.execute(
            update(rotation_jobs)
            .where(rotation_jobs.c.job_id == job_id)
            .values(state="running", running_key=f"child:{child}", finished_at=None)
        )
    again = wait_for(engine, job_id, lambda row: row.state != "running")
    assert (again.state, again.done, again.total) == ("done", WRAPS + 1, WRAPS + 1)
    assert wraps_of(engine, child) == after
    restarted.stop()
    engine.dispose()
