"""Children's dates and the retention report (issue 15, part 6; decision 0019), on both
databases. Refusals first: each clear, changing nothing, audited."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from sqlalchemy import Engine, select

from keyservice.db.tables import children
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import Device, Room, create_child, ok, put_record
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def _dates(device: Device, child_id: str, **body: str | None) -> httpx.Response:
    with device.client() as http:
        return http.post(f"/v1/children/{child_id}/dates", json=body)


def _stored(engine: Engine, child_id: str) -> tuple[date | None, date | None]:
    with engine.connect() as connection:
        row = connection.execute(
            select(children.c.date_of_birth, children.c.left_on).where(
                children.c.child_id == child_id
            )
        ).one()
    return row.date_of_birth, row.left_on


def test_only_an_admin_or_a_lead_of_the_child_sets_its_dates(
    room: Room, admin: Device, service_db: Engine
) -> None:
    for device in (room.educator, room.guardian):
        refused = _dates(device, room.child, left_on="2020-07-31")
        assert refused.status_code == 403, refused.text
        outcome, detail = last_audit_entry(
            service_db, principal_id=device.principal_id, action="child.dates"
        )
        assert (outcome, detail["reason"]) == ("deny", "no_standing")
    backwards = _dates(room.dsl, room.child, date_of_birth="2020-01-01", left_on="2019-01-01")
    assert backwards.status_code == 422
    assert "before the date of birth" in backwards.json()["detail"]
    unknown = _dates(admin, "ef" * 16, left_on="2020-07-31")
    assert unknown.status_code == 404
    assert _stored(service_db, room.child) == (None, None)

    ok(_dates(room.dsl, room.child, date_of_birth="2016-03-01"))
    set_by_admin = ok(_dates(admin, room.child, date_of_birth="2016-03-01", left_on="2020-07-31"))
    assert set_by_admin["left_on"] == "2020-07-31"
    assert _stored(service_db, room.child) == (date(2016, 3, 1), date(2020, 7, 31))


def test_the_report_lists_what_is_due_with_the_rule_that_made_it_due(
    service: KeyService, room: Room, admin: Device
) -> None:
    today = date.today()
    # Left six years ago (five years are over); born 26 years ago (25 are over).
    ok(
        _dates(
            admin,
            room.child,
            date_of_birth=today.replace(year=today.year - 26, day=1).isoformat(),
            left_on=today.replace(year=today.year - 6, day=1).isoformat(),
        )
    )
    observation = put_record(room.dsl, child_ids=[room.child])
    safeguarding = put_record(room.dsl, child_ids=[room.child], category="safeguarding")
    # A child who left a year ago: nothing of theirs is due.
    recent = create_child(admin)
    ok(_dates(admin, recent, left_on=today.replace(year=today.year - 1, day=1).isoformat()))
    # A child with no leaving date is kept, whatever else.
    undated = create_child(admin)

    with admin.client() as http:
        report = ok(http.get("/v1/admin/retention/due"))
    mine = [item for item in report if set(item["child_ids"]) & {room.child, recent, undated}]
    by_id = {item["record_id"] or item["child_id"]: item for item in mine}
    assert by_id[observation.record_id]["rule"] == "*=left+5y"
    assert by_id[safeguarding.record_id]["rule"] == "safeguarding=age+25y"
    assert by_id[room.child]["kind"] == "child"
    assert not by_id[room.child]["on_hold"] and not by_id[room.child]["shred_open"]
    assert recent not in by_id and undated not in by_id

    # Not for the child's staff: the report is an admin's.
    with room.dsl.client() as http:
        assert http.get("/v1/admin/retention/due").status_code == 403
