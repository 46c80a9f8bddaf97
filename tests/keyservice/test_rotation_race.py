"""Rotations interleaved with other work on PostgreSQL, each step driven, none left to luck.

A record created while its child's key rotates ends under the new version (decision 0017).
The race, on PostgreSQL: a record creation reads the child's active key version, a rotation
switches versions and its job moves every wrap it can see and reports done, and only then
does the creation commit its wrap, under the old, decrypt-only version that the rotation
(perhaps for a suspected compromise) meant to retire. Here the test's own connection is the
creation, through the catalog's ``active_versions`` as record creation calls it, held open
while the real service rotates; it commits once the rotation has either finished or is seen
waiting on its lock. SQLite cannot interleave them: every transaction holds the one write
lock from its start (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, create_engine, insert, select, text

from keyservice.catalog.child_keys import active_versions
from keyservice.catalog.jobs import cancel
from keyservice.db.tables import record_children, records, rotation_jobs, wrapped_record_keys
from keyservice.ids import new_id
from keyservice.keys import wrap_record_key
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import bootstrap_admin, create_child, ok
from tests.keyservice.test_rotation_jobs import wait_done
from tests.keyservice.wraps import CATEGORY, add_wraps, child_key, opened, root_of, wraps_of
from tests.servers import KeyService
from vault.format import RecordAttributes

pytestmark = pytest.mark.integration

# How long the test waits for the rotation to finish or block before giving up (a hang
# guard, not a timing assertion: either outcome ends the wait at once).
HANG_GUARD_S = 60.0


def waiting_on(connection: Connection, pid: int) -> bool:
    """Whether some other backend waits for a lock ``pid`` holds."""
    return bool(
        connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(pid))"
            ),
            {"pid": pid},
        ).scalar_one()
    )


def test_a_record_created_during_a_rotation_ends_under_the_new_version(
    keyservice_production: KeyService,
) -> None:
    service = keyservice_production
    admin = bootstrap_admin(service)
    child = create_child(admin)
    root = root_of(service.env)
    engine = create_engine(service.env["CAREVAULT_DATABASE_URL"])
    try:
        earlier = add_wraps(engine, root, child_id=child, created_by=admin.principal_id, count=3)
        creation = engine.connect()
        creation.begin()
        pid = int(creation.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        read = active_versions(creation, [child])[child]
        assert read == 1

        ended: dict[str, Any] = {}

        def rotate() -> None:
            with admin.client() as http:
                started = ok(
                    http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child})
                )
            ended.update(wait_done(admin, started["job"]["job_id"]))

        rotation = threading.Thread(target=rotate)
        rotation.start()
        deadline = time.monotonic() + HANG_GUARD_S
        with engine.connect() as watcher:
            while rotation.is_alive() and not waiting_on(watcher, pid):
                assert time.monotonic() < deadline, "the rotation neither finished nor waited"
                time.sleep(0.01)
                watcher.rollback()

        # The creation goes on with the version it read, as new_version does.
        record_id, record_key = new_id(), os.urandom(32)
        attributes = RecordAttributes.from_hex(
            record_id=record_id, version=1, child_ids=[child], category=CATEGORY
        )
        creation.execute(
            insert(records).values(
                record_id=record_id,
                category=CATEGORY,
                withheld_from_guardians=False,
                created_by=admin.principal_id,
                created_at=datetime.now(UTC),
            )
        )
        creation.execute(insert(record_children).values(record_id=record_id, child_id=child))
        creation.execute(
            insert(wrapped_record_keys).values(
                record_id=record_id,
                version=1,
                child_id=child,
                child_key_version=read,
                wrapped=wrap_record_key(
                    child_key=child_key(engine, root, child, read),
                    attributes=attributes,
                    record_key=record_key,
                ),
            )
        )
        creation.commit()
        creation.close()
        rotation.join(HANG_GUARD_S)
        assert not rotation.is_alive()

        assert ended["state"] == "done"
        under = {record: version for record, (version, _) in wraps_of(engine, child).items()}
        assert under == {record: 2 for record in [*earlier, record_id]}
        made = {**earlier, record_id: record_key}
        assert opened(engine, root, child, made) == made
    finally:
        engine.dispose()


def test_the_old_rotate_route_names_a_cancellation_during_its_job(
    keyservice_production: KeyService,
) -> None:
    """The old route runs its job to the end itself; cancelled meanwhile (here while its
    batch waits on the test's lock on the child's wraps), it answers 409 naming the
    cancellation, audited, rather than ``rewrapped: 0``."""
    service = keyservice_production
    admin = bootstrap_admin(service)
    child = create_child(admin)
    root = root_of(service.env)
    engine = create_engine(service.env["CAREVAULT_DATABASE_URL"])
    try:
        made = add_wraps(engine, root, child_id=child, created_by=admin.principal_id, count=3)
        holder = engine.connect()
        holder.begin()
        pid = int(holder.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        holder.execute(
            select(wrapped_record_keys.c.record_id)
            .where(wrapped_record_keys.c.child_id == child)
            .with_for_update()
        ).all()

        answered: dict[str, httpx.Response] = {}

        def rotate() -> None:
            with admin.client() as http:
                answered["rotate"] = http.post(f"/v1/admin/children/{child}/rotate-key")

        rotation = threading.Thread(target=rotate)
        rotation.start()
        deadline = time.monotonic() + HANG_GUARD_S
        with engine.connect() as watcher:
            while not waiting_on(watcher, pid):
                assert rotation.is_alive(), answered["rotate"].text
                assert time.monotonic() < deadline, "the rotation's batch never waited"
                time.sleep(0.01)
                watcher.rollback()
        # The batch waits on the wraps: cancel its job (as another admin's request would)
        # on a connection of its own, then let the batch go on.
        with engine.begin() as other:
            job_id = other.execute(
                select(rotation_jobs.c.job_id).where(
                    rotation_jobs.c.target == child, rotation_jobs.c.state == "running"
                )
            ).scalar_one()
            cancel(other, job_id, now=datetime.now(UTC), by=admin.principal_id)
        holder.rollback()
        holder.close()
        rotation.join(HANG_GUARD_S)
        assert not rotation.is_alive()

        answer = answered["rotate"]
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert f"rotation job {job_id} was cancelled" in answer.json()["detail"]
        outcome, detail = last_audit_entry(
            engine, principal_id=admin.principal_id, action="child_key.rotate"
        )
        assert (outcome, detail["reason"], detail["job_id"]) == ("deny", "cancelled", job_id)
        # The batch was undone: every wrap still under version 1, each opening.
        under = {record: version for record, (version, _) in wraps_of(engine, child).items()}
        assert under == {record: 1 for record in made}
        assert opened(engine, root, child, made) == made
    finally:
        engine.dispose()
