"""Rotation jobs over the API (issue 15, part 2), on both databases: refusals first (an
unknown child, a second job on the same key, versions still needed), then dry runs that
change nothing, then a job that runs in the service while releases go on."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, update

from keyservice.catalog.rotation import start_child_rotation
from keyservice.db.tables import child_keys, rotation_jobs
from keyservice.ids import new_id
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    assign,
    assigned_staff,
    create_child,
    ok,
    put_record,
    release,
)
from tests.keyservice.wraps import add_wraps, opened, root_of, wraps_of
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def wait_done(admin: Device, job_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with admin.client() as http:
        while True:
            job: dict[str, Any] = ok(http.get(f"/v1/admin/jobs/{job_id}"))
            if job["state"] != "running" or time.monotonic() > deadline:
                return job
            time.sleep(0.05)


def versions(engine: Engine, child_id: str) -> dict[int, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(child_keys.c.version, child_keys.c.state).where(
                child_keys.c.child_id == child_id
            )
        )
        return {row.version: row.state for row in rows}


def job_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(rotation_jobs)).scalar_one())


def test_rotating_a_child_that_does_not_exist_is_404_and_audited(
    admin: Device, service_db: Engine
) -> None:
    missing = new_id()
    with admin.client() as http:
        answer = http.post("/v1/admin/rotations", json={"kind": "child", "child_id": missing})
        assert answer.status_code == 404
        assert answer.json()["detail"] == "no child with this id"
        outcome, detail = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="rotation.start"
        )
        assert (outcome, detail["child_id"], detail["status"]) == ("deny", missing, 404)
        old_route = http.post(f"/v1/admin/children/{missing}/rotate-key")
        assert old_route.status_code == 404
        assert old_route.json()["detail"] == "no child with this id"
        outcome, _ = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="child_key.rotate"
        )
        assert outcome == "deny"


def test_an_unknown_job_is_404_and_audited(admin: Device, service_db: Engine) -> None:
    missing = new_id()
    with admin.client() as http:
        answer = http.get(f"/v1/admin/jobs/{missing}")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "no job with this id"
    outcome, detail = last_audit_entry(
        service_db, principal_id=admin.principal_id, action="rotation.show"
    )
    assert (outcome, detail["job_id"], detail["status"]) == ("deny", missing, 404)


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "child"},
        {"kind": "root", "child_id": "0" * 32},
        {"kind": "suite"},
        {"kind": "child", "child_id": "not an id"},
    ],
)
def test_a_malformed_rotation_is_422_and_changes_nothing(
    admin: Device, service_db: Engine, body: dict[str, Any]
) -> None:
    before = job_count(service_db)
    with admin.client() as http:
        assert http.post("/v1/admin/rotations", json=body).status_code == 422
    assert job_count(service_db) == before


def test_rotations_are_admin_only(service: KeyService, admin: Device) -> None:
    educator, child = assigned_staff(service, admin)
    with educator.client() as http:
        answer = http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child})
        assert answer.status_code == 403
        assert http.get("/v1/admin/jobs").status_code == 403


def test_a_second_root_job_is_refused_409_and_audited(admin: Device, service_db: Engine) -> None:
    held = new_id()
    now = datetime.now(UTC)
    with service_db.begin() as connection:
        connection.execute(
            rotation_jobs.insert().values(
                job_id=held,
                kind="root",
                state="running",
                running_key="root",
                total=0,
                done=0,
                created_at=now,
                updated_at=now,
                lease_owner="another instance",
                lease_expires=now + timedelta(hours=1),
            )
        )
    try:
        with admin.client() as http:
            answer = http.post("/v1/admin/rotations", json={"kind": "root"})
        assert answer.status_code == 409
        assert held in answer.json()["detail"]
        outcome, detail = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="rotation.start"
        )
        assert (outcome, detail["reason"], detail["running_job"]) == ("deny", "job_running", held)
    finally:
        with service_db.begin() as connection:
            connection.execute(delete(rotation_jobs).where(rotation_jobs.c.job_id == held))


def test_a_job_held_elsewhere_refuses_a_second_one_and_trimming_until_it_finishes(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    """A child's job started (as by another instance, which holds it) but not run: the wraps
    still use version 1, so a second job, a minimum decryption version of 2 and trimming are
    refused; once the job is free the service's runner finishes it, and then both work."""
    child = create_child(admin)
    root = root_of(service.env)
    made = add_wraps(service_db, root, child_id=child, created_by=admin.principal_id, count=40)
    with service_db.begin() as connection:
        started = start_child_rotation(
            connection,
            root,
            child_id=child,
            started_by=admin.principal_id,
            now=datetime.now(UTC),
            lease=("another instance", timedelta(hours=1)),
        )
    assert started.job_id is not None and started.total == 40
    with admin.client() as http:
        second = http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child})
        assert second.status_code == 409
        assert versions(service_db, child) == {1: "decrypt-only", 2: "active"}
        assert http.post(f"/v1/admin/children/{child}/rotate-key").status_code == 409
        too_high = http.put(
            f"/v1/admin/children/{child}/min-decryption-version", json={"version": 2}
        )
        assert too_high.status_code == 409
        assert "version 1: 40 wraps" in too_high.json()["detail"]
        outcome, _ = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="child_key.min_version"
        )
        assert outcome == "deny"
        assert http.post(f"/v1/admin/children/{child}/trim-key-versions").status_code == 409
        listed = ok(http.get(f"/v1/admin/children/{child}/key-versions"))
        assert [(v["version"], v["wraps"]) for v in listed["versions"]] == [(1, 40), (2, 0)]

        with service_db.begin() as connection:
            connection.execute(
                update(rotation_jobs)
                .where(rotation_jobs.c.job_id == started.job_id)
                .values(lease_expires=datetime.now(UTC) - timedelta(seconds=1))
            )
        job = wait_done(admin, started.job_id)
        assert (job["state"], job["done"], job["total"]) == ("done", 40, 40)
        assert {v for v, _ in wraps_of(service_db, child).values()} == {2}
        assert opened(service_db, root, child, made) == made

        ok(http.put(f"/v1/admin/children/{child}/min-decryption-version", json={"version": 2}))
        trimmed = ok(http.post(f"/v1/admin/children/{child}/trim-key-versions"))
    assert trimmed["min_decryption_version"] == 2
    assert [(v["version"], v["state"]) for v in trimmed["versions"]] == [
        (1, "destroyed"),
        (2, "active"),
    ]


def test_dry_runs_count_and_change_nothing(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    child = create_child(admin)
    root = root_of(service.env)
    add_wraps(service_db, root, child_id=child, created_by=admin.principal_id, count=25)
    wraps, jobs = wraps_of(service_db, child), job_count(service_db)
    with service_db.connect() as connection:
        wrapped_children = connection.execute(
            select(child_keys.c.child_id, child_keys.c.version, child_keys.c.wrapped)
        ).all()
    with admin.client() as http:
        child_run = ok(
            http.post(
                "/v1/admin/rotations", json={"kind": "child", "child_id": child, "dry_run": True}
            )
        )
        root_run = ok(http.post("/v1/admin/rotations", json={"kind": "root", "dry_run": True}))
    assert child_run["job"] is None and child_run["would_change"] == 25
    assert child_run["to_version"] == 2
    live = [row for row in wrapped_children if row.wrapped is not None]
    assert root_run["job"] is None and root_run["would_change"] == len(live)
    assert versions(service_db, child) == {1: "active"}
    assert wraps_of(service_db, child) == wraps
    assert job_count(service_db) == jobs
    with service_db.connect() as connection:
        assert (
            connection.execute(
                select(child_keys.c.child_id, child_keys.c.version, child_keys.c.wrapped)
            ).all()
            == wrapped_children
        )


def test_a_child_rotation_job_runs_while_releases_and_uploads_go_on(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    educator, child = assigned_staff(service, admin)
    record = put_record(educator, child_ids=[child])
    root = root_of(service.env)
    made = add_wraps(service_db, root, child_id=child, created_by=admin.principal_id, count=3000)
    outcomes: list[str] = []
    stop = threading.Event()

    def releases() -> None:
        while not stop.is_set():
            _, results = release(educator, [(record.record_id, 1)])
            outcomes.append(results[(record.record_id, 1)]["status"])

    releasing = threading.Thread(target=releases)
    releasing.start()
    try:
        with admin.client() as http:
            started = http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child})
            assert started.status_code == 202
            job_id = started.json()["job"]["job_id"]
            newer = put_record(educator, child_ids=[child])
            job = wait_done(admin, job_id)
    finally:
        stop.set()
        releasing.join(30)
    assert (job["state"], job["done"], job["total"]) == ("done", 3001, 3001)
    assert job["eta_s"] == 0.0
    assert outcomes and set(outcomes) == {"granted"}
    assert {v for v, _ in wraps_of(service_db, child).values()} == {2}
    assert opened(service_db, root, child, made) == made
    response, results = release(educator, [(record.record_id, 1), (newer.record_id, 1)])
    assert educator.open_key(response, results[(record.record_id, 1)]) == record.record_key
    assert educator.open_key(response, results[(newer.record_id, 1)]) == newer.record_key
    with admin.client() as http:
        listed = ok(http.get("/v1/admin/jobs"))
    assert job_id in {j["job_id"] for j in listed}
    outcome, detail = last_audit_entry(
        service_db, principal_id=admin.principal_id, action="rotation.start"
    )
    assert (outcome, detail["job_id"]) == ("allow", job_id)


def test_a_record_of_two_children_in_two_versions_still_releases_after_a_rotation(
    service: KeyService, admin: Device
) -> None:
    educator, first = assigned_staff(service, admin)
    second = create_child(admin)
    assign(admin, staff_id=educator.principal_id, child_id=second, role="educator")
    original = put_record(educator, child_ids=[first, second])
    amended = put_record(educator, child_ids=[first, second], amend=original.record_id)
    with admin.client() as http:
        rotated = ok(http.post(f"/v1/admin/children/{first}/rotate-key"))
    assert rotated["rewrapped"] == 2
    items = [(original.record_id, 1), (original.record_id, 2)]
    response, results = release(educator, items)
    assert educator.open_key(response, results[items[0]]) == original.record_key
    assert educator.open_key(response, results[items[1]]) == amended.record_key


def test_cancelling_an_unknown_or_ended_job_is_refused_audited_and_changes_nothing(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    educator, child = assigned_staff(service, admin)
    missing = new_id()
    with admin.client() as http:
        unknown = http.post(f"/v1/admin/jobs/{missing}/cancel")
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == "no job with this id"
        outcome, detail = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="rotation.cancel"
        )
        assert (outcome, detail["job_id"], detail["status"]) == ("deny", missing, 404)
        assert http.post("/v1/admin/jobs/not-an-id/cancel").status_code == 422

        started = ok(http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child}))
        job_id = started["job"]["job_id"]
        finished = wait_done(admin, job_id)
        assert finished["state"] == "done"
        jobs = job_count(service_db)
        ended = http.post(f"/v1/admin/jobs/{job_id}/cancel")
        assert ended.status_code == 409
        assert ended.json()["detail"] == f"job {job_id} is done, not running: nothing to cancel"
        outcome, detail = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="rotation.cancel"
        )
        assert (outcome, detail["reason"], detail["job_state"]) == ("deny", "not_running", "done")
        assert ok(http.get(f"/v1/admin/jobs/{job_id}")) == finished
        assert job_count(service_db) == jobs
        assert versions(service_db, child) == {1: "decrypt-only", 2: "active"}
    with educator.client() as http:
        assert http.post(f"/v1/admin/jobs/{job_id}/cancel").status_code == 403


def test_a_cancelled_job_ends_frees_its_key_and_leaves_every_wrap_openable(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    """A child job held by another instance (which never runs it) is cancelled: it ends,
    audited, wraps stay under version 1 (decrypt-only, still opening), a second cancel is
    refused, and a new rotation of the same child may start and moves every wrap."""
    child = create_child(admin)
    root = root_of(service.env)
    made = add_wraps(service_db, root, child_id=child, created_by=admin.principal_id, count=30)
    with service_db.begin() as connection:
        started = start_child_rotation(
            connection,
            root,
            child_id=child,
            started_by=admin.principal_id,
            now=datetime.now(UTC),
            lease=("another instance", timedelta(hours=1)),
        )
    assert started.job_id is not None
    with admin.client() as http:
        cancelled = ok(http.post(f"/v1/admin/jobs/{started.job_id}/cancel"))
        assert (cancelled["state"], cancelled["done"], cancelled["eta_s"]) == ("cancelled", 0, 0.0)
        assert cancelled["finished_at"] is not None
        outcome, detail = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="rotation.cancel"
        )
        assert (outcome, detail["job_id"], detail["target"]) == ("allow", started.job_id, child)
        with service_db.connect() as connection:
            row = connection.execute(
                select(rotation_jobs).where(rotation_jobs.c.job_id == started.job_id)
            ).one()
        assert (row.running_key, row.lease_owner, row.lease_expires) == (None, None, None)
        assert versions(service_db, child) == {1: "decrypt-only", 2: "active"}
        assert {v for v, _ in wraps_of(service_db, child).values()} == {1}
        assert opened(service_db, root, child, made) == made
        again = http.post(f"/v1/admin/jobs/{started.job_id}/cancel")
        assert again.status_code == 409 and "is cancelled" in again.json()["detail"]

        fresh = http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child})
        assert fresh.status_code == 202
        assert fresh.json()["job"]["total"] == 30
        job = wait_done(admin, fresh.json()["job"]["job_id"])
    assert (job["state"], job["done"], job["to_version"]) == ("done", 30, 3)
    assert {v for v, _ in wraps_of(service_db, child).values()} == {3}
    assert opened(service_db, root, child, made) == made


def test_a_rewrap_job_moves_a_cancelled_rotations_leftovers_without_a_new_version(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    """After a cancelled rotation, wraps sit under version 1 (decrypt-only): a dry-run rewrap
    counts them and changes nothing, a rewrap moves them onto the active version 2 (no version
    3), then version 1 can be trimmed. Unknown child: 404 audited; a rewrap while a job holds
    the child's key: 409; with nothing left to move: a job of 0 that finishes."""
    child = create_child(admin)
    root = root_of(service.env)
    made = add_wraps(service_db, root, child_id=child, created_by=admin.principal_id, count=35)
    with service_db.begin() as connection:
        held = start_child_rotation(
            connection,
            root,
            child_id=child,
            started_by=admin.principal_id,
            now=datetime.now(UTC),
            lease=("another instance", timedelta(hours=1)),
        )
    missing = new_id()
    with admin.client() as http:
        unknown = http.post("/v1/admin/rotations", json={"kind": "rewrap", "child_id": missing})
        assert unknown.status_code == 404
        outcome, detail = last_audit_entry(
            service_db, principal_id=admin.principal_id, action="rotation.start"
        )
        assert (outcome, detail["kind"], detail["child_id"]) == ("deny", "rewrap", missing)
        assert http.post("/v1/admin/rotations", json={"kind": "rewrap"}).status_code == 422
        busy = http.post("/v1/admin/rotations", json={"kind": "rewrap", "child_id": child})
        assert busy.status_code == 409 and str(held.job_id) in busy.json()["detail"]
        ok(http.post(f"/v1/admin/jobs/{held.job_id}/cancel"))

        jobs, wraps = job_count(service_db), wraps_of(service_db, child)
        dry = ok(
            http.post(
                "/v1/admin/rotations", json={"kind": "rewrap", "child_id": child, "dry_run": True}
            )
        )
        assert (dry["job"], dry["would_change"], dry["to_version"]) == (None, 35, 2)
        assert (job_count(service_db), wraps_of(service_db, child)) == (jobs, wraps)

        started = http.post("/v1/admin/rotations", json={"kind": "rewrap", "child_id": child})
        assert started.status_code == 202
        assert started.json()["job"]["kind"] == "rewrap"
        job = wait_done(admin, started.json()["job"]["job_id"])
        assert (job["state"], job["done"], job["total"], job["to_version"]) == ("done", 35, 35, 2)
        assert versions(service_db, child) == {1: "decrypt-only", 2: "active"}
        assert {v for v, _ in wraps_of(service_db, child).values()} == {2}
        assert opened(service_db, root, child, made) == made
        ok(http.put(f"/v1/admin/children/{child}/min-decryption-version", json={"version": 2}))
        trimmed = ok(http.post(f"/v1/admin/children/{child}/trim-key-versions"))
        assert [(v["version"], v["state"]) for v in trimmed["versions"]] == [
            (1, "destroyed"),
            (2, "active"),
        ]
        nothing = ok(http.post("/v1/admin/rotations", json={"kind": "rewrap", "child_id": child}))
        assert nothing["would_change"] == 0
        empty = wait_done(admin, nothing["job"]["job_id"])
        assert (empty["state"], empty["done"]) == ("done", 0)
    assert opened(service_db, root, child, made) == made
