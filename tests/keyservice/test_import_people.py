"""Imports that create people (issue 15, part 4; docs/decisions/0027-import-creates-people.md)
against the real key service, on SQLite and on PostgreSQL.

Refusals first: every bad row of a ``name,…`` file is named by line, nothing is created, and
one deny audit entry is written. Then: a new-staff file is always one proposal, its people and
their first enrolment codes made only at approval, the codes answered once to the approver and
never to the proposer; new children are created at once into rooms without staff, and as one
proposal into rooms with staff, with the ids that were proposed.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from keyservice.api.room_models import ImportPublic
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    approve,
    approver_for,
    create_principal,
    enrol,
    host_approve,
    ok,
    refused_enrolment,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration

IMPORT = "rooms.import"
NEW_CHILDREN = "name,date_of_birth,left_on,room,valid_from"
NEW_STAFF = "name,roles,room,role,valid_from"
STAFF_HEADER = "staff_id,room,role,valid_from,valid_to"


def _room(admin: Device, prefix: str) -> tuple[str, str]:
    name = f"{prefix} {uuid.uuid4().hex[:8]}"
    with admin.client() as http:
        return ok(http.post("/v1/admin/rooms", json={"name": name}))["room_id"], name


def _import(caller: Device, csv_text: str, *, dry_run: bool = False) -> httpx.Response:
    with caller.client() as http:
        return http.post("/v1/admin/imports", json={"csv": csv_text, "dry_run": dry_run})


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as db:
        return tuple(
            db.execute(text(query)).scalar_one()
            for query in (
                "SELECT count(*) FROM children",
                "SELECT count(*) FROM child_keys",
                "SELECT count(*) FROM principals",
                "SELECT count(*) FROM enrolment_codes",
                "SELECT count(*) FROM room_staff",
                "SELECT count(*) FROM room_children",
                "SELECT count(*) FROM proposals",
            )
        )


def _tag() -> str:
    """A name part no other test uses: names are how a file's people are matched."""
    return uuid.uuid4().hex[:8]


def _bad_cases(admin: Device) -> list[tuple[str, str, list[tuple[int, str]]]]:
    _, room = _room(admin, "Bad")
    t = _tag()
    future = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    # A child and a member of staff who already exist, by name (and date of birth).
    with admin.client() as http:
        ok(
            http.post(
                "/v1/admin/imports",
                json={"csv": f"{NEW_CHILDREN}\nKim {t},2022-05-01,,{room},\n"},
            )
        )
    create_principal(admin, kind="staff", roles=["educator"], display_name=f"Lee {t}")
    return [
        (
            "missing name",
            f"{NEW_CHILDREN}\nAna {t},,,{room},\n ,2022-01-01,,{room},\n",
            [(3, "missing_name")],
        ),
        ("bad date", f"{NEW_CHILDREN}\nAna {t},1 May 2022,,{room},\n", [(2, "bad_date")]),
        ("future birth", f"{NEW_CHILDREN}\nAna {t},{future},,,\n", [(2, "bad_date")]),
        (
            "left before birth",
            f"{NEW_CHILDREN}\nAna {t},2022-05-01,2021-09-01,,\n",
            [(2, "left_before_birth")],
        ),
        (
            "leaves before joining",
            f"{NEW_CHILDREN}\nAna {t},2022-05-01,2024-09-01,{room},2025-01-06\n",
            [(2, "ends_before_start")],
        ),
        ("unknown room", f"{NEW_CHILDREN}\nAna {t},,,No Room {t},\n", [(2, "unknown_room")]),
        (
            "duplicate within the file",
            f"{NEW_CHILDREN}\nAna {t},2022-01-01,,{room},\nBen {t},,,{room},\n"
            f"ana {t},2022-01-01,,{room},\n",
            [(4, "duplicate")],
        ),
        ("child already exists", f"{NEW_CHILDREN}\nKim {t},2022-05-01,,,\n", [(2, "exists")]),
        ("wrong columns", f"{NEW_CHILDREN}\nAna {t},2022-05-01,{room}\n", [(2, "columns")]),
        ("staff bad role", f"{NEW_STAFF}\nMo {t},,{room},cook,\n", [(2, "bad_role")]),
        ("staff as admin", f"{NEW_STAFF}\nMo {t},admin,{room},educator,\n", [(2, "bad_role")]),
        ("staff without a room", f"{NEW_STAFF}\nMo {t},,,educator,\n", [(2, "unknown_room")]),
        ("staff already exists", f"{NEW_STAFF}\nlee {t},,{room},educator,\n", [(2, "exists")]),
        (
            "several bad rows among good ones",
            f"{NEW_STAFF}\nMo {t},educator,{room},educator,2027-01-01\n,,{room},dsl,\n"
            f"Jo {t},manager,{room},dsl,next week\n",
            [(3, "missing_name"), (4, "bad_date")],
        ),
    ]


CASES = [
    "missing name",
    "bad date",
    "future birth",
    "left before birth",
    "leaves before joining",
    "unknown room",
    "duplicate within the file",
    "child already exists",
    "wrong columns",
    "staff bad role",
    "staff as admin",
    "staff without a room",
    "staff already exists",
    "several bad rows among good ones",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_bad_people_file_names_each_bad_line_creates_nobody_and_is_audited(
    case: str, dry_run: bool, admin: Device, service_db: Engine
) -> None:
    _, csv_text, expected = next(c for c in _bad_cases(admin) if c[0] == case)
    before = _counts(service_db)
    response = _import(admin, csv_text, dry_run=dry_run)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [(e["line"], e["code"]) for e in problem["errors"]] == expected
    assert "nothing was changed" in problem["detail"]
    assert _counts(service_db) == before
    outcome, detail = last_audit_entry(service_db, principal_id=admin.principal_id, action=IMPORT)
    assert outcome == "deny"
    assert detail["bad_lines"] == [line for line, _ in expected]
    assert detail["kind"] in ("new_children", "new_staff")
    assert detail["dry_run"] is dry_run


def _codes_in(value: Any) -> bool:
    """Whether anything shaped like an enrolment code is in ``value`` (a JSON answer)."""
    return "enrolment_code" in str(value) and "'code':" in str(value)


def test_new_staff_wait_for_an_independent_admin_who_alone_receives_their_codes(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    room_id, room = _room(admin, "Rainbows")
    t = _tag()
    batch = f"{NEW_STAFF}\nMo {t},educator,{room},educator,\nJo {t},manager dsl,{room},dsl,\n"
    before = _counts(service_db)
    dry = ok(_import(admin, batch, dry_run=True))
    # The answer is written without the framework's model (for speed): it must still be one.
    ImportPublic.model_validate(dry)
    assert dry["kind"] == "new_staff" and dry["gives_rights"] and not dry["applied"]
    assert dry["counts"]["created"] == 2 and dry["counts"]["added"] == 2
    assert [p["display_name"] for p in dry["people"]] == [f"Mo {t}", f"Jo {t}"]
    assert dry["people"][1]["roles"] == ["dsl", "manager"]
    assert _counts(service_db) == before
    # Even into a room without children: a new member of staff has read rights by it, so
    # the proposer alone may not hold their first codes (decision 0004).
    response = _import(admin, batch)
    assert response.status_code == 202, response.text
    proposal = response.json()
    assert proposal["action"] == IMPORT
    assert proposal["enrolment_codes"] == [] and proposal["enrolment_code"] is None
    new_ids = proposal["payload"]["new_ids"]
    assert sorted(proposal["payload"]["beneficiaries"]) == sorted(new_ids.values())
    counts = _counts(service_db)
    assert counts[:6] == before[:6] and counts[6] == before[6] + 1
    with admin.client() as http:
        own = http.post(f"/v1/proposals/{proposal['proposal_id']}/approve")
    assert own.status_code == 404
    assert _counts(service_db)[:6] == before[:6]
    approver = approver_for(admin)
    approved = approve(approver, proposal["proposal_id"])
    assert approved["state"] == "approved"
    issued = approved["enrolment_codes"]
    assert [(c["line"], c["principal_id"]) for c in issued] == [
        (2, new_ids["2"]),
        (3, new_ids["3"]),
    ]
    # Once: neither the proposer nor the approver sees them again.
    with admin.client() as http:
        mine = ok(http.get(f"/v1/proposals/{proposal['proposal_id']}"))
    assert mine["enrolment_codes"] == [] and not _codes_in(mine["payload"])
    with approver.client() as http:
        shown = ok(http.get(f"/v1/admin/rooms/{room_id}"))
    staff = {m["person_id"]: m["role"] for m in shown["memberships"] if m["kind"] == "staff"}
    assert staff == {new_ids["2"]: "educator", new_ids["3"]: "dsl"}
    outcome, detail = last_audit_entry(
        service_db, principal_id=approver.principal_id, action="proposal.approve"
    )
    assert outcome == "allow" and detail["codes_issued"] == 2
    assert not any(c["code"] in str(detail) for c in issued)
    # Each code enrols its person, vouched for by the approver; and only once.
    mo = enrol(service.base_url, issued[0]["code"])
    assert mo.principal_id == new_ids["2"]
    with mo.client() as http:
        me = ok(http.get("/v1/me"))
        devices = ok(http.get("/v1/me/devices"))
    assert me["roles"] == ["educator"] and me["display_name"] == f"Mo {t}"
    assert devices[0]["approved_by"] == approver.principal_id
    assert refused_enrolment(service, issued[0]["code"]).status_code in (400, 403, 404)
    # The proposer cannot take a code of their own for them now: it is a proposal.
    with admin.client() as http:
        again = http.post(f"/v1/admin/principals/{new_ids['3']}/enrolment-codes")
    assert again.status_code == 202, again.text
    # The same file again: they exist now.
    repeat = _import(admin, batch)
    assert repeat.status_code == 422
    assert [e["code"] for e in repeat.json()["errors"]] == ["exists", "exists"]


def test_new_children_into_rooms_without_staff_are_created_at_once(
    admin: Device, service_db: Engine
) -> None:
    room_id, room = _room(admin, "Babies")
    t = _tag()
    batch = (
        f"{NEW_CHILDREN}\nAna {t},2023-02-01,,{room},2026-09-01\n"
        f"Ben {t},,,,\nCai {t},2022-11-30,2027-07-31,{room_id},\n"
    )
    before = _counts(service_db)
    dry = ok(_import(admin, batch, dry_run=True))
    assert dry["counts"] == {
        "rows": 3,
        "created": 3,
        "added": 2,
        "ended": 0,
        "extended": 0,
        "unchanged": 0,
    }
    assert _counts(service_db) == before
    done = ok(_import(admin, batch))
    ImportPublic.model_validate(done)
    assert done["applied"] and not done["gives_rights"]
    made = {p["line"]: p["person_id"] for p in done["people"]}
    with service_db.connect() as db:
        rows = {
            r.child_id: r
            for r in db.execute(
                text(
                    "SELECT c.child_id, c.display_name, c.date_of_birth, c.left_on, k.version, "
                    "k.state FROM children c JOIN child_keys k ON k.child_id = c.child_id "
                    "WHERE c.child_id IN (:a, :b, :c)"
                ),
                {"a": made[2], "b": made[3], "c": made[4]},
            )
        }
        joined = dict(
            db.execute(
                text("SELECT child_id, valid_to FROM room_children WHERE room_id = :r"),
                {"r": room_id},
            ).all()
        )
    assert {r.display_name for r in rows.values()} == {f"Ana {t}", f"Ben {t}", f"Cai {t}"}
    assert all((r.version, r.state) == (1, "active") for r in rows.values())
    assert str(rows[made[4]].left_on) == "2027-07-31"
    assert set(joined) == {made[2], made[4]}
    # The leaving date ends the room membership.
    assert joined[made[2]] is None and str(joined[made[4]]).startswith("2027-07-31")


def test_new_children_into_a_room_with_staff_are_one_proposal_created_as_proposed(
    admin: Device, service_db: Engine
) -> None:
    room_id, room = _room(admin, "Toddlers")
    staff_id = create_principal(admin, kind="staff", roles=["educator"])
    staff = _import(admin, f"{STAFF_HEADER}\n{staff_id},{room},educator,,\n")
    assert staff.status_code == 200 and staff.json()["applied"], staff.text
    t = _tag()
    batch = f"{NEW_CHILDREN}\nDee {t},2023-03-03,,{room},\nEli {t},2023-04-04,,,\n"
    before = _counts(service_db)
    response = _import(admin, batch)
    assert response.status_code == 202, response.text
    proposal = response.json()
    assert proposal["payload"]["beneficiaries"] == [staff_id]
    assert _counts(service_db)[:2] == before[:2]
    approve(approver_for(admin), proposal["proposal_id"])
    ids = set(proposal["payload"]["new_ids"].values())
    with service_db.connect() as db:
        found = set(
            db.execute(
                text("SELECT child_id FROM child_keys WHERE child_id IN (:a, :b)"),
                dict(zip("ab", sorted(ids), strict=True)),
            ).scalars()
        )
        member = db.execute(
            text("SELECT child_id FROM room_children WHERE room_id = :r"), {"r": room_id}
        ).scalar_one()
    assert found == ids and member == proposal["payload"]["new_ids"]["2"]


def test_approval_refuses_new_children_if_one_was_created_meanwhile(
    admin: Device, service_db: Engine
) -> None:
    _, room = _room(admin, "Owls")
    staff_id = create_principal(admin, kind="staff", roles=["educator"])
    ok(_import(admin, f"{STAFF_HEADER}\n{staff_id},{room},educator,,\n"))
    t = _tag()
    proposal = _import(admin, f"{NEW_CHILDREN}\nFay {t},2023-01-01,,{room},\n").json()
    ok(_import(admin, f"{NEW_CHILDREN}\nFay {t},2023-01-01,,,\n"))
    before = _counts(service_db)
    with approver_for(admin).client() as http:
        stale = http.post(f"/v1/proposals/{proposal['proposal_id']}/approve")
    assert stale.status_code == 422, stale.text
    assert "already exists" in stale.json()["detail"]
    assert _counts(service_db) == before


def test_the_host_approves_an_import_of_new_children_and_staff(
    service: KeyService, admin: Device, service_db: Engine
) -> None:
    """Where nobody on the service can approve, the host does: it makes the children's keys
    with the service's root key, and prints the new staff's codes (to the host only)."""
    _, room = _room(admin, "Hosted")
    t = _tag()
    staff = _import(admin, f"{NEW_STAFF}\nNia {t},educator,{room},educator,\n").json()
    said = host_approve(service, staff["proposal_id"])
    found = re.search(rf"enrolment code for Nia {t} \(([0-9a-f]{{32}}), line 2, .*\): (\S+)", said)
    assert found is not None, said
    assert found.group(1) == staff["payload"]["new_ids"]["2"]
    nia = enrol(service.base_url, found.group(2))
    with nia.client() as http:
        devices = ok(http.get("/v1/me/devices"))
    # Seen by the host only: nobody on the service vouches for the device.
    assert devices[0]["approved_by"] is None
    kids = _import(admin, f"{NEW_CHILDREN}\nOla {t},2023-06-01,,{room},\n").json()
    assert kids["action"] == IMPORT, kids
    host_approve(service, kids["proposal_id"])
    with service_db.connect() as db:
        state = db.execute(
            text("SELECT state FROM child_keys WHERE child_id = :c AND version = 1"),
            {"c": kids["payload"]["new_ids"]["2"]},
        ).scalar_one()
    assert state == "active"
