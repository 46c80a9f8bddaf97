"""Rooms and bulk imports of room memberships and assignments (issue 15, part 4;
docs/decisions/0018-rooms-and-imports.md). Admins only.

Joining a room and importing a file go through one path (keyservice/catalog/imports.py):
validated whole, applied whole, and when it gives anyone read rights stored as one proposal
(202) that an independent second person approves. A file with bad rows is answered 422 with
every bad row by line number, changes nothing, and is audited. Ending a membership never
waits.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic_core import to_json

from keyservice.api.changes import proposal_response, proposed
from keyservice.api.proposal_models import ProposalPublic
from keyservice.api.room_models import (
    ChildJoin,
    ImportPublic,
    ImportRequest,
    MembershipEnd,
    MembershipPublic,
    RoomCreate,
    RoomDetailPublic,
    RoomPublic,
    StaffJoin,
)
from keyservice.api.schemas import Id
from keyservice.audit.record import audit
from keyservice.caller import Caller
from keyservice.catalog import imports, rooms
from keyservice.catalog.changes import Propose, judge
from keyservice.deps import AdminCaller, Db, State
from keyservice.policy.writes import Change, ProposalAction
from keyservice.problems import problem
from keyservice.state import ServiceState

router = APIRouter()

NO_ROOM = "no room with this id or name"
IMPORT = "rooms.import"
ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": ProposalPublic, "description": "waiting for a second person"},
    422: {"description": "bad rows: each by line number in ``errors``; nothing changed"},
}


def _room(room: rooms.Room) -> RoomPublic:
    return RoomPublic(
        room_id=room.room_id,
        name=room.name,
        created_at=room.created_at,
        staff_now=room.staff_now,
        children_now=room.children_now,
    )


@router.post("/v1/admin/rooms", response_model=RoomPublic, status_code=201)
def create_room(body: RoomCreate, caller: AdminCaller, db: Db, state: State) -> RoomPublic:
    now = state.clock()
    room_id = rooms.create_room(db, body.name, now=now)
    audit(db, state, caller, Change.ROOM_CREATE.value, {"room_id": room_id})
    db.commit()
    made = next(r for r in rooms.list_rooms(db, now=now) if r.room_id == room_id)
    db.commit()
    return _room(made)


@router.get("/v1/admin/rooms", response_model=list[RoomPublic])
def list_rooms(caller: AdminCaller, db: Db, state: State) -> list[RoomPublic]:
    answer = [_room(r) for r in rooms.list_rooms(db, now=state.clock())]
    db.commit()
    return answer


@router.get("/v1/admin/rooms/{room}", response_model=RoomDetailPublic)
def show_room(room: str, caller: AdminCaller, db: Db, state: State) -> RoomDetailPublic:
    """A room by id or name, with its current and scheduled memberships."""
    detail = rooms.show_room(db, room, now=state.clock())
    db.commit()
    if detail is None:
        raise HTTPException(status_code=404, detail=NO_ROOM)
    return RoomDetailPublic(
        **_room(detail.room).model_dump(),
        memberships=[
            MembershipPublic(
                membership_id=m.membership_id,
                room_id=m.room_id,
                kind=m.kind,  # type: ignore[arg-type]
                person_id=m.person_id,
                role=m.role,
                valid_from=m.valid_from,
                valid_to=m.valid_to,
            )
            for m in detail.memberships
        ],
    )


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def _one_row(header: tuple[str, ...], cells: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerow(cells)
    return out.getvalue()


@router.post(
    "/v1/admin/rooms/{room_id}/staff",
    response_model=ImportPublic,
    responses=ANSWERS,
)
def add_staff(
    room_id: Id, body: StaffJoin, caller: AdminCaller, db: Db, state: State, response: Response
) -> ImportPublic | Response:
    """Attach a member of staff to the room with a role; waits for a second person when the
    room has children then."""
    text = _one_row(
        imports.HEADERS["staff"],
        [body.staff_id, room_id, body.role, _when(body.valid_from), _when(body.valid_to)],
    )
    return run_import(db, state, caller, text, dry_run=body.dry_run, response=response)


@router.post(
    "/v1/admin/rooms/{room_id}/children",
    response_model=ImportPublic,
    responses=ANSWERS,
)
def add_child(
    room_id: Id, body: ChildJoin, caller: AdminCaller, db: Db, state: State, response: Response
) -> ImportPublic | Response:
    """A child joins the room (leaving any other room on that day); waits for a second person
    when the room has staff then."""
    text = _one_row(
        imports.HEADERS["children"],
        [body.child_id, room_id, _when(body.valid_from), _when(body.valid_to)],
    )
    return run_import(db, state, caller, text, dry_run=body.dry_run, response=response)


@router.post("/v1/admin/room-memberships/{membership_id}/end", status_code=204)
def end_membership(
    membership_id: Id, body: MembershipEnd, caller: AdminCaller, db: Db, state: State
) -> None:
    """End a staff or child membership now or on a later date; never waits for anyone."""
    ended = rooms.end_membership(db, membership_id, at=body.at, now=state.clock())
    if ended is None:
        db.rollback()
        raise HTTPException(status_code=404, detail="no live room membership with this id")
    audit(
        db,
        state,
        caller,
        "room.leave",
        {
            "membership_id": membership_id,
            "room_id": ended.room_id,
            "kind": ended.kind,
            "person_id": ended.person_id,
            "valid_to": _when(ended.valid_to),
        },
    )
    db.commit()


@router.post("/v1/admin/imports", response_model=ImportPublic, responses=ANSWERS)
def import_file(
    body: ImportRequest, caller: AdminCaller, db: Db, state: State, response: Response
) -> ImportPublic | Response:
    """Import an assignments, staff or children CSV (the header names which; one starting
    with ``name`` creates the children or staff it lists): all rows or none; ``dry_run``
    answers the diff and changes nothing."""
    return run_import(db, state, caller, body.csv, dry_run=body.dry_run, response=response)


def run_import(
    db: Db,
    state: ServiceState,
    caller: Caller,
    text: str,
    *,
    dry_run: bool,
    response: Response,
) -> ImportPublic | Response:
    now = state.clock()
    try:
        planned = imports.plan(db, text, proposer_id=caller.principal_id, now=now)
    except imports.ImportInvalidError as bad:
        db.rollback()
        reported = bad.errors[: imports.MAX_REPORTED]
        audit(
            db,
            state,
            caller,
            IMPORT,
            {
                "kind": bad.kind,
                "rows": bad.rows,
                "bad_rows": len(bad.errors),
                "bad_lines": [e.line for e in reported],
                "reasons": sorted({e.code for e in bad.errors}),
                "dry_run": dry_run,
                "status": 422,
            },
            outcome="deny",
        )
        db.commit()
        return problem(
            422,
            str(bad),
            errors=[{"line": e.line, "code": e.code, "reason": e.reason} for e in reported],
        )
    if dry_run:
        db.rollback()
        return _diff(planned, dry_run=True, applied=False)
    verdict = judge(
        db, caller, Change.ROOMS_IMPORT, child_id=None, now=now, gives_rights=planned.gives_rights
    )
    if verdict.needs_approval:
        only = sorted(planned.beneficiaries)
        wanted = Propose(
            ProposalAction.ROOMS_IMPORT,
            imports.payload(text, planned),
            None,
            only[0] if len(only) == 1 else None,
        )
        # Answered as it stands: the route's model is the diff's.
        return proposal_response(proposed(db, state, caller, wanted, response))
    imports.apply(db, planned, now=now, root=state.root)
    audit(db, state, caller, IMPORT, {"kind": planned.kind, "counts": planned.counts})
    db.commit()
    return _diff(planned, dry_run=False, applied=True)


def _diff(planned: imports.Plan, *, dry_run: bool, applied: bool) -> Response:
    """The diff as ``ImportPublic`` JSON. Its rows (up to 20,000 changes and as many new
    people) come from the planner already typed, so they are written as plain dicts by the
    same JSON serializer rather than built and validated as models twice over (which took
    most of a 10,000-row dry run)."""
    answer = {
        "kind": planned.kind,
        "dry_run": dry_run,
        "applied": applied,
        "gives_rights": planned.gives_rights,
        "counts": planned.counts,
        "changes": [
            {
                "op": s.op,
                "line": s.line,
                "person_id": s.person_id,
                "target_id": s.target_id,
                "role": s.role,
                "valid_from": s.valid_from,
                "valid_to": s.valid_to,
                "membership_id": s.membership_id,
            }
            for s in planned.steps
        ],
        "people": [
            {
                "line": p.line,
                "person_id": p.person_id,
                "display_name": p.display_name,
                "roles": (p.roles or "").split(),
                "date_of_birth": p.date_of_birth,
                "left_on": p.left_on,
            }
            for p in planned.people
        ],
    }
    return Response(to_json(answer), media_type="application/json")
