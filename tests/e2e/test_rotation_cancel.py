"""A child rotation job cancelled mid-run in a real key service process (issue 15, part 2;
decision 0023): the job ends at once and its runner stops after the batch in flight (what was
counted is exactly what moved), releases go on granted throughout, every wrap opens whichever
version it is under, and a new rotation of the same child may start and finishes the move."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine

from tests.e2e.test_rotation_resume import JOB_SETTINGS, job_row, wait_for
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

WRAPS = 8_000


@pytest.mark.parametrize("flavour", ["embedded", "production"])
def test_a_child_rotation_cancelled_mid_job_stops_and_a_new_one_finishes(
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
    statuses: list[str] = []

    def released() -> None:
        _, results = release(educator, [(record.record_id, 1)])
        statuses.append(results[(record.record_id, 1)]["status"])

    with admin.client() as http:
        started = ok(http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child}))
        job_id = started["job"]["job_id"]
        wait_for(engine, job_id, lambda row: row.done > 0)
        answer = http.post(f"/v1/admin/jobs/{job_id}/cancel")
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "cancelled", "the job finished first: raise WRAPS"
        released()
        # Give the runner time to meet the cancellation at the end of its batch in flight:
        # a runner that went on would move more wraps than the job counted.
        time.sleep(1.5)
        cancelled = job_row(engine, job_id)
        assert cancelled.state == "cancelled" and cancelled.running_key is None
        assert 0 < cancelled.done < WRAPS + 1
        after_cancel = wraps_of(engine, child)
        by_version = {v: 0 for v in (1, 2)}
        for version, _ in after_cancel.values():
            by_version[version] += 1
        assert by_version[2] == cancelled.done
        assert by_version[1] == WRAPS + 1 - cancelled.done
        time.sleep(0.5)
        assert wraps_of(engine, child) == after_cancel
        assert job_row(engine, job_id).done == cancelled.done
        # Mixed versions: every wrap opens, the record releases and opens.
        assert opened(engine, root, child, made) == made
        response, results = release(educator, [(record.record_id, 1)])
        assert educator.open_key(response, results[(record.record_id, 1)]) == record.record_key

        fresh = ok(http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child}))
        fresh_id = fresh["job"]["job_id"]
        assert fresh["job"]["total"] == WRAPS + 1 and fresh["to_version"] == 3
    while job_row(engine, fresh_id).state == "running":
        released()
    finished = job_row(engine, fresh_id)
    assert (finished.state, finished.done) == ("done", WRAPS + 1)
    assert statuses and set(statuses) == {"granted"}
    assert {v for v, _ in wraps_of(engine, child).values()} == {3}
    assert opened(engine, root, child, made) == made
    response, results = release(educator, [(record.record_id, 1)])
    assert educator.open_key(response, results[(record.record_id, 1)]) == record.record_key
    service.stop()
    engine.dispose()
