"""Rooms: made, listed and shown, and their memberships ended (docs/decisions/0018-rooms-and-
imports.md). Joining a room goes through keyservice/catalog/imports.py, one row or a batch,
because joining may give read rights and so may wait for a second person; ending never does.

A member of staff reads a room's children for the overlap of both memberships (the release
facts read them beside direct assignments: keyservice/catalog/facts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from keyservice.db.tables import room_children, room_staff, rooms
from keyservice.errors import InvalidChangeError
from keyservice.ids import new_id

STAFF = "staff"
CHILD = "child"


@dataclass(frozen=True)
class Membership:
    """A member of staff's (with a role) or a child's (role None) time in a room."""

    membership_id: str
    room_id: str
    kind: str  # staff | child
    person_id: str
    role: str | None
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True)
class Room:
    room_id: str
    name: str
    created_at: datetime
    staff_now: int
    children_now: int


@dataclass(frozen=True)
class RoomDetail:
    room: Room
    # Every membership not ended before ``now``: current and scheduled ones.
    memberships: tuple[Membership, ...]


def create_room(db: Connection, name: str, *, now: datetime) -> str:
    name = name.strip()
    if not name:
        raise InvalidChangeError("a room needs a name")
    if "," in name or "\n" in name:
        raise InvalidChangeError("a room's name cannot hold a comma or a line break (CSV names it)")
    taken = db.execute(select(rooms.c.room_id).where(rooms.c.name == name)).first()
    if taken is not None:
        raise InvalidChangeError(f"a room named {name!r} already exists")
    room_id = new_id()
    db.execute(insert(rooms).values(room_id=room_id, name=name, created_at=now))
    return room_id


def _live(table: Any, now: datetime) -> Any:
    return or_(table.c.valid_to.is_(None), table.c.valid_to > now)


def _current(table: Any, now: datetime) -> Any:
    return (table.c.valid_from <= now) & _live(table, now)


def list_rooms(db: Connection, *, now: datetime) -> list[Room]:
    """Every room by name, with how many staff and children are in it now."""
    staff: dict[str, int] = {
        room_id: count
        for room_id, count in db.execute(
            select(room_staff.c.room_id, func.count())
            .where(_current(room_staff, now))
            .group_by(room_staff.c.room_id)
        )
    }
    kids: dict[str, int] = {
        room_id: count
        for room_id, count in db.execute(
            select(room_children.c.room_id, func.count())
            .where(_current(room_children, now))
            .group_by(room_children.c.room_id)
        )
    }
    return [
        Room(
            row.room_id,
            row.name,
            row.created_at,
            staff.get(row.room_id, 0),
            kids.get(row.room_id, 0),
        )
        for row in db.execute(select(rooms).order_by(rooms.c.name))
    ]


def find_room(db: Connection, ref: str) -> tuple[str, str] | None:
    """A room by its id or its name: (room id, name)."""
    row = db.execute(
        select(rooms.c.room_id, rooms.c.name).where(
            or_(rooms.c.room_id == ref, rooms.c.name == ref)
        )
    ).first()
    return None if row is None else (row.room_id, row.name)


def show_room(db: Connection, ref: str, *, now: datetime) -> RoomDetail | None:
    found = find_room(db, ref)
    if found is None:
        return None
    room_id = found[0]
    room = next(r for r in list_rooms(db, now=now) if r.room_id == room_id)
    members = [
        Membership(r.membership_id, r.room_id, STAFF, r.staff_id, r.role, r.valid_from, r.valid_to)
        for r in db.execute(
            select(room_staff)
            .where(room_staff.c.room_id == room_id, _live(room_staff, now))
            .order_by(room_staff.c.valid_from)
        )
    ]
    members += [
        Membership(r.membership_id, r.room_id, CHILD, r.child_id, None, r.valid_from, r.valid_to)
        for r in db.execute(
            select(room_children)
            .where(room_children.c.room_id == room_id, _live(room_children, now))
            .order_by(room_children.c.valid_from)
        )
    ]
    return RoomDetail(room, tuple(members))


def end_membership(
    db: Connection, membership_id: str, *, at: datetime | None, now: datetime
) -> Membership | None:
    """End a staff or child membership at ``at`` (now by default; a later time schedules the
    end). None when there is no membership with this id that has not ended by then. A
    membership that had not started yet ends before it starts: it never gives anything."""
    end = at or now
    if end.utcoffset() is None:
        raise InvalidChangeError("times must carry a UTC offset")
    for table, kind, person in (
        (room_staff, STAFF, room_staff.c.staff_id),
        (room_children, CHILD, room_children.c.child_id),
    ):
        row = db.execute(
            select(table, person.label("person_id")).where(
                table.c.membership_id == membership_id,
                or_(table.c.valid_to.is_(None), table.c.valid_to > end),
                _live(table, now),
            )
        ).first()
        if row is None:
            continue
        ends = max(end, row.valid_from)
        db.execute(
            update(table).where(table.c.membership_id == membership_id).values(valid_to=ends)
        )
        return Membership(
            membership_id,
            row.room_id,
            kind,
            row.person_id,
            getattr(row, "role", None),
            row.valid_from,
            ends,
        )
    return None
