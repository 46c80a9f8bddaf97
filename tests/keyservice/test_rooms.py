"""Rooms and bulk imports (issue 15, part 4) against the real key service, on both databases.

Refusals first: every bad CSV names its line, changes nothing and is audited; an import that
gives read rights waits for an independent second person. Then what rooms do: a member of
staff reads a room's children for the overlap of both memberships, a child's move ends the
old room's access and starts the new one's on the move date, and leaving stops releases.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from keyservice.caller import Caller
from keyservice.catalog.facts import decide_row_reads
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    Room,
    admin_enrols,
    approve,
    approver_for,
    create_child,
    create_principal,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration

IMPORT = "rooms.import"
STAFF_HEADER = "staff_id,room,role,valid_from,valid_to"
CHILD_HEADER = "child_id,room,valid_from,valid_to"


def _new_room(admin: Device, prefix: str = "Room") -> tuple[str, str]:
    name = f"{prefix} {uuid.uuid4().hex[:8]}"
    with admin.client() as http:
        made = ok(http.post("/v1/admin/rooms", json={"name": name}))
    return made["room_id"], name


def _import(caller: Device, csv_text: str, *, dry_run: bool = False) -> httpx.Response:
    with caller.client() as http:
        return http.post("/v1/admin/imports", json={"csv": csv_text, "dry_run": dry_run})


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as db:
        return tuple(
            db.execute(text(query)).scalar_one()
            for query in (
                "SELECT count(*) FROM room_staff",
                "SELECT count(*) FROM room_children",
                "SELECT count(*) FROM assignments",
                "SELECT count(*) FROM proposals",
            )
        )


def _day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


@pytest.fixture
def people(service: KeyService, admin: Device) -> dict[str, Any]:
    """Two staff and two children (no devices needed), and two rooms."""
    babies = _new_room(admin, "Babies")
    toddlers = _new_room(admin, "Toddlers")
    return {
        "staff": [create_principal(admin, kind="staff", roles=["educator"]) for _ in range(2)],
        "children": [create_child(admin) for _ in range(2)],
        "babies": babies,
        "toddlers": toddlers,
    }


def _bad_cases(p: dict[str, Any]) -> list[tuple[str, str, list[tuple[int, str]]]]:
    s0, s1 = p["staff"]
    c0 = p["children"][0]
    babies = p["babies"][1]
    unknown = uuid.uuid4().hex
    return [
        ("wrong header", "staff,room\n" + f"{s0},{babies}\n", [(1, "header")]),
        (
            "duplicate rows",
            f"{STAFF_HEADER}\n{s0},{babies},educator,,\n{s1},{babies},educator,,\n"
            f"{s0},{babies},educator,,\n",
            [(4, "duplicate")],
        ),
        (
            "unknown person",
            f"{STAFF_HEADER}\n{s0},{babies},educator,,\n{unknown},{babies},educator,,\n",
            [(3, "unknown_person")],
        ),
        (
            "a child is not staff",
            f"{STAFF_HEADER}\n{c0},{babies},educator,,\n",
            [(2, "unknown_person")],
        ),
        (
            "unknown room",
            f"{CHILD_HEADER}\n{c0},No Such Room {unknown},,\n",
            [(2, "unknown_room")],
        ),
        (
            "ends before it starts",
            f"{STAFF_HEADER}\n{s0},{babies},educator,2027-03-01,2027-02-01\n",
            [(2, "ends_before_start")],
        ),
        ("bad role", f"{STAFF_HEADER}\n{s0},{babies},cook,,\n", [(2, "bad_role")]),
        ("bad date", f"{STAFF_HEADER}\n{s0},{babies},educator,1 March,\n", [(2, "bad_date")]),
        ("wrong column count", f"{CHILD_HEADER}\n{c0},{babies}\n", [(2, "columns")]),
        (
            "several bad rows among good ones",
            f"{CHILD_HEADER}\n{c0},{babies},,\n{unknown},{babies},,\n\n"
            f"{c0},{babies},2027-01-02,2027-01-01\n",
            [(3, "unknown_person"), (5, "ends_before_start")],
        ),
        ("header only", f"{CHILD_HEADER}\n", [(1, "empty")]),
    ]


CASES = [
    "wrong header",
    "duplicate rows",
    "unknown person",
    "a child is not staff",
    "unknown room",
    "ends before it starts",
    "bad role",
    "bad date",
    "wrong column count",
    "several bad rows among good ones",
    "header only",
]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_csv_names_each_bad_line_changes_nothing_and_is_audited(
    case: str, people: dict[str, Any], admin: Device, service_db: Engine
) -> None:
    _, csv_text, expected = next(c for c in _bad_cases(people) if c[0] == case)
    before = _counts(service_db)
    response = _import(admin, csv_text)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [(e["line"], e["code"]) for e in problem["errors"]] == expected
    assert (
        f"line {expected[0][0]}" in problem["detail"] and "nothing was changed" in problem["detail"]
    )
    assert _counts(service_db) == before
    outcome, detail = last_audit_entry(service_db, principal_id=admin.principal_id, action=IMPORT)
    assert outcome == "deny"
    assert detail["bad_lines"] == [line for line, _ in expected]
    assert detail["status"] == 422


def test_a_bad_dry_run_is_refused_the_same_way(
    people: dict[str, Any], admin: Device, service_db: Engine
) -> None:
    _, csv_text, expected = _bad_cases(people)[1]
    before = _counts(service_db)
    response = _import(admin, csv_text, dry_run=True)
    assert response.status_code == 422
    assert [(e["line"], e["code"]) for e in response.json()["errors"]] == expected
    assert _counts(service_db) == before


def test_only_an_admin_imports(
    service: KeyService, admin: Device, people: dict[str, Any], service_db: Engine
) -> None:
    manager = admin_enrols(service, admin, kind="staff", roles=["manager"])
    before = _counts(service_db)
    response = _import(
        manager, f"{CHILD_HEADER}\n{people['children'][0]},{people['babies'][1]},,\n"
    )
    assert response.status_code == 403
    assert _counts(service_db) == before
    outcome, _ = last_audit_entry(
        service_db, principal_id=manager.principal_id, action="admin.refused"
    )
    assert outcome == "deny"


def test_a_row_about_yourself_is_refused(
    admin: Device, people: dict[str, Any], service_db: Engine
) -> None:
    before = _counts(service_db)
    response = _import(admin, f"{STAFF_HEADER}\n{admin.principal_id},{people['babies'][1]},dsl,,\n")
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "self_grant"
    assert _counts(service_db) == before


def test_ten_thousand_rows_fit_in_one_request(admin: Device) -> None:
    """The body limit lets a 10,000-row file through: its rows are judged, not the size."""
    rows = [
        f"{uuid.uuid4().hex},{uuid.uuid4().hex},educator,2027-01-01,2027-12-31"
        for _ in range(10_000)
    ]
    response = _import(admin, "staff_id,child_id,role,valid_from,valid_to\n" + "\n".join(rows))
    assert response.status_code == 422, response.text[:300]
    body = response.json()
    assert body["errors"][0] == {
        "line": 2,
        "code": "unknown_person",
        "reason": body["errors"][0]["reason"],
    }
    assert "9999 more bad rows" in body["detail"]


def test_an_import_giving_rights_waits_and_its_proposer_cannot_approve(
    service: KeyService, admin: Device, people: dict[str, Any], service_db: Engine
) -> None:
    (s0, s1), (c0, c1) = people["staff"], people["children"]
    babies_id, babies = people["babies"]
    # Children into an empty room give nobody anything: applied at once.
    done = ok(_import(admin, f"{CHILD_HEADER}\n{c0},{babies},,\n{c1},{babies},,\n"))
    assert done["applied"] and not done["gives_rights"]
    assert done["counts"]["added"] == 2
    # Staff into a room with children: one proposal for the batch, shown as its diff.
    before = _counts(service_db)
    batch = f"{STAFF_HEADER}\n{s0},{babies},educator,,\n{s1},{babies_id},manager,,\n"
    dry = ok(_import(admin, batch, dry_run=True))
    assert dry["gives_rights"] and not dry["applied"]
    assert [c["op"] for c in dry["changes"]] == ["add", "add"]
    assert _counts(service_db) == before
    response = _import(admin, batch)
    assert response.status_code == 202, response.text
    proposal = response.json()
    assert proposal["action"] == IMPORT
    assert proposal["payload"]["counts"]["added"] == 2
    assert sorted(proposal["payload"]["beneficiaries"]) == sorted([s0, s1])
    assert [c[0] for c in proposal["payload"]["changes"]] == ["add", "add"]
    with service_db.connect() as db:
        assert (
            db.execute(
                text("SELECT count(*) FROM room_staff WHERE room_id = :r"), {"r": babies_id}
            ).scalar_one()
            == 0
        )
    with admin.client() as http:
        own = http.post(f"/v1/proposals/{proposal['proposal_id']}/approve")
    assert own.status_code == 404
    outcome, detail = last_audit_entry(
        service_db, principal_id=admin.principal_id, action="proposal.approve"
    )
    assert outcome == "deny" and detail["reason"] == "own_proposal"
    approved = approve(approver_for(admin), proposal["proposal_id"])
    assert approved["state"] == "approved"
    with admin.client() as http:
        shown = ok(http.get(f"/v1/admin/rooms/{babies_id}"))
    assert shown["staff_now"] == 2 and shown["children_now"] == 2
    outcome, detail = last_audit_entry(
        service_db, principal_id=approver_for(admin).principal_id, action=IMPORT
    )
    assert outcome == "allow" and detail["counts"]["added"] == 2


def test_approval_revalidates_and_refuses_a_stale_diff(
    admin: Device, people: dict[str, Any], service_db: Engine
) -> None:
    s0 = people["staff"][0]
    c0 = people["children"][0]
    room_id, room = people["toddlers"]
    ok(_import(admin, f"{CHILD_HEADER}\n{c0},{room},,\n"))
    proposal = _import(admin, f"{STAFF_HEADER}\n{s0},{room},educator,,\n").json()
    assert proposal["action"] == IMPORT
    # Meanwhile the same member of staff is attached by another file: the diff changed.
    with service_db.begin() as db:
        db.execute(
            text(
                "INSERT INTO room_staff (membership_id, room_id, staff_id, role, valid_from) "
                "VALUES (:m, :r, :s, 'educator', :f)"
            ),
            {"m": uuid.uuid4().hex, "r": room_id, "s": s0, "f": datetime.now(UTC)},
        )
    before = _counts(service_db)
    with approver_for(admin).client() as http:
        stale = http.post(f"/v1/proposals/{proposal['proposal_id']}/approve")
    assert stale.status_code == 422, stale.text
    assert "changed since it was proposed" in stale.json()["detail"]
    assert _counts(service_db) == before


def _reads(engine: Engine, staff_id: str, record_id: str, child: str, now: datetime) -> bool:
    caller = Caller(
        principal_id=staff_id,
        kind="staff",
        roles=frozenset({"educator"}),
        device_id="d" * 32,
        display_name="Staff",
        organisation=None,
        receiving_key=b"\0" * 32,
        nonce="n",
    )
    with engine.connect() as db:
        rows = db.execute(
            text(
                "SELECT record_id, category, withheld_from_guardians FROM records "
                "WHERE record_id = :r"
            ),
            {"r": record_id},
        ).all()
        return decide_row_reads(db, caller, rows, {record_id: [child]}, now=now)[record_id].allowed


def test_a_move_ends_the_old_rooms_access_and_starts_the_new_on_the_move_date(
    service: KeyService, admin: Device, room: Room, service_db: Engine
) -> None:
    """The service runs on the wall clock, so the release decision (which takes ``now``) is
    asked of the catalog on the service's database at instants around the move."""
    child = room.child
    record = put_record(room.dsl, child_ids=[child])
    (_, babies), (_, toddlers) = _new_room(admin, "Babies"), _new_room(admin, "Toddlers")
    baby_staff = create_principal(admin, kind="staff", roles=["educator"])
    toddler_staff = create_principal(admin, kind="staff", roles=["educator"])
    ok(_import(admin, f"{CHILD_HEADER}\n{child},{babies},{_day(-10)},\n"))
    for staff_id, name in ((baby_staff, babies), (toddler_staff, toddlers)):
        proposal = _import(admin, f"{STAFF_HEADER}\n{staff_id},{name},educator,{_day(-30)},\n")
        if proposal.status_code == 202:
            approve(approver_for(admin), proposal.json()["proposal_id"])
        else:
            assert ok(proposal)["applied"]
    move = _day(3)
    moved = _import(admin, f"{CHILD_HEADER}\n{child},{toddlers},{move},\n")
    assert moved.status_code == 202, moved.text  # the toddlers' educator gains the child
    changes = moved.json()["payload"]["changes"]
    assert sorted(c[0] for c in changes) == ["add", "end"]
    assert moved.json()["payload"]["beneficiaries"] == [toddler_staff]
    approve(approver_for(admin), moved.json()["proposal_id"])
    at = datetime.fromisoformat(move + "T00:00:00+00:00")
    before, after = at - timedelta(microseconds=1), at
    assert _reads(service_db, baby_staff, record.record_id, child, datetime.now(UTC))
    assert _reads(service_db, baby_staff, record.record_id, child, before)
    assert not _reads(service_db, baby_staff, record.record_id, child, after)
    assert not _reads(service_db, toddler_staff, record.record_id, child, before)
    assert _reads(service_db, toddler_staff, record.record_id, child, after)
    assert _reads(service_db, toddler_staff, record.record_id, child, after + timedelta(days=400))


def test_release_by_room_membership_works_and_stops_after_leaving(
    service: KeyService, admin: Device, room: Room, service_db: Engine
) -> None:
    record = put_record(room.dsl, child_ids=[room.child])
    room_id, name = _new_room(admin, "Preschool")
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    _, results = release(educator, [(record.record_id, record.version)])
    assert results[(record.record_id, record.version)]["status"] != "granted"
    ok(_import(admin, f"{CHILD_HEADER}\n{room.child},{name},,\n"))
    with admin.client() as http:
        joined = http.post(
            f"/v1/admin/rooms/{room_id}/staff",
            json={"staff_id": educator.principal_id, "role": "educator"},
        )
    assert joined.status_code == 202, joined.text
    approve(approver_for(admin), joined.json()["proposal_id"])
    _, results = release(educator, [(record.record_id, record.version)])
    assert results[(record.record_id, record.version)]["status"] == "granted"
    with educator.client() as http:
        mine_now = {c["child_id"]: c["relation"] for c in ok(http.get("/v1/children"))}
    assert mine_now == {room.child: "room:educator"}
    with admin.client() as http:
        shown = ok(http.get(f"/v1/admin/rooms/{name}"))
    mine = next(m for m in shown["memberships"] if m["person_id"] == educator.principal_id)
    with admin.client() as http:
        ended = http.post(f"/v1/admin/room-memberships/{mine['membership_id']}/end", json={})
    assert ended.status_code == 204  # ending never waits for anyone
    _, results = release(educator, [(record.record_id, record.version)])
    assert results[(record.record_id, record.version)]["status"] != "granted"
    outcome, detail = last_audit_entry(
        service_db, principal_id=admin.principal_id, action="room.leave"
    )
    assert outcome == "allow" and detail["membership_id"] == mine["membership_id"]


def test_a_scheduled_end_in_a_file_is_an_end_and_needs_no_approval(
    admin: Device, people: dict[str, Any], service_db: Engine
) -> None:
    s0, c0 = people["staff"][0], people["children"][0]
    name = people["babies"][1]
    ok(_import(admin, f"{STAFF_HEADER}\n{s0},{name},educator,{_day(-5)},\n"))
    proposal = _import(admin, f"{CHILD_HEADER}\n{c0},{name},{_day(-5)},\n").json()
    approve(approver_for(admin), proposal["proposal_id"])
    ended = ok(_import(admin, f"{STAFF_HEADER}\n{s0},{name},educator,{_day(-5)},{_day(7)}\n"))
    assert ended["applied"] and ended["counts"]["ended"] == 1 and not ended["gives_rights"]
    again = ok(_import(admin, f"{STAFF_HEADER}\n{s0},{name},educator,{_day(-5)},{_day(7)}\n"))
    assert again["counts"]["unchanged"] == 1 and not again["changes"]
    # Ending it later again gives rights back for longer: that waits.
    longer = _import(admin, f"{STAFF_HEADER}\n{s0},{name},educator,{_day(-5)},\n")
    assert longer.status_code == 202
    assert longer.json()["payload"]["changes"][0][0] == "extend"


def test_room_names_are_unique_and_unknown_rooms_are_404(admin: Device) -> None:
    _, name = _new_room(admin)
    with admin.client() as http:
        again = http.post("/v1/admin/rooms", json={"name": name})
        missing = http.get(f"/v1/admin/rooms/{uuid.uuid4().hex}")
        listed = ok(http.get("/v1/admin/rooms"))
    assert again.status_code == 422
    assert missing.status_code == 404
    assert name in [r["name"] for r in listed]


def test_offboarding_ends_room_memberships_too(
    service: KeyService, admin: Device, people: dict[str, Any], service_db: Engine
) -> None:
    leaver = create_principal(admin, kind="staff", roles=["educator"])
    name = people["toddlers"][1]
    ok(_import(admin, f"{STAFF_HEADER}\n{leaver},{name},educator,,\n"))
    with service_db.connect() as db:
        membership = db.execute(
            text("SELECT membership_id FROM room_staff WHERE staff_id = :s"), {"s": leaver}
        ).scalar_one()
    with admin.client() as http:
        done = ok(http.post(f"/v1/admin/principals/{leaver}/offboard", json={"reason": "left"}))
    assert membership in done["assignments_ended"]
    with service_db.connect() as db:
        ended = db.execute(
            text("SELECT valid_to FROM room_staff WHERE membership_id = :m"), {"m": membership}
        ).scalar_one()
    assert ended is not None
