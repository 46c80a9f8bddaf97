"""The shred timer in the service's lifespan carries out a due shred with no request touching
it; a bad CAREVAULT_RETENTION refuses to start, naming the setting (decision 0019). A service
of its own, embedded: the timer's code is the same on both databases, which
tests/keyservice/test_shredding.py covers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from keyservice.db.tables import shred_requests, wrapped_record_keys
from tests.keyservice.conftest import database
from tests.keyservice.helpers import (
    assign,
    bootstrap_admin,
    create_child,
    create_principal,
    enrol,
    host_code,
    ok,
    put_record,
)
from tests.servers import KeyServiceFactory, ServerStartError

pytestmark = pytest.mark.integration

TICK_S = 0.2


def test_the_timer_carries_out_a_due_shred(keyservice_factory: KeyServiceFactory) -> None:
    service = keyservice_factory(extra_env={"CAREVAULT_SHRED_CHECK_SECONDS": str(TICK_S)})
    admin = bootstrap_admin(service)
    child = create_child(admin)
    leads = []
    for role in ("dsl", "manager"):
        principal_id = create_principal(admin, kind="staff", roles=[role])
        lead = enrol(service.base_url, host_code(service, principal_id))
        assign(admin, staff_id=lead.principal_id, child_id=child, role=role)
        leads.append(lead)
    dsl, manager = leads
    record = put_record(dsl, child_ids=[child])
    with dsl.client() as http:
        shred_id = ok(
            http.post("/v1/shreds", json={"record_id": record.record_id, "reason": "due"})
        )["shred_id"]
    with manager.client() as http:
        ok(http.post(f"/v1/shreds/{shred_id}/approve"))
    engine = database(service)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(shred_requests)
                .where(shred_requests.c.shred_id == shred_id)
                .values(not_before=datetime(2000, 1, 1, tzinfo=UTC))
            )
        deadline = time.monotonic() + 5.0
        state = "approved"
        while state != "done" and time.monotonic() < deadline:
            time.sleep(TICK_S / 2)
            with engine.connect() as connection:
                state = connection.execute(
                    select(shred_requests.c.state).where(shred_requests.c.shred_id == shred_id)
                ).scalar_one()
        assert state == "done"
        with engine.connect() as connection:
            left = connection.execute(
                select(wrapped_record_keys.c.record_id).where(
                    wrapped_record_keys.c.record_id == record.record_id
                )
            ).all()
        assert left == []
    finally:
        engine.dispose()


def test_a_bad_retention_setting_refuses_to_start(keyservice_factory: KeyServiceFactory) -> None:
    with pytest.raises(ServerStartError) as refused:
        keyservice_factory(extra_env={"CAREVAULT_RETENTION": "*=left+five"})
    assert "CAREVAULT_RETENTION" in str(refused.value)
