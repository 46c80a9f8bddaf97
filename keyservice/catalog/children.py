"""Children: creating one (with its first key), and the children a person is related to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select

from keyservice.catalog.child_keys import ACTIVE, create_child_key
from keyservice.db.bulk import insert_rows
from keyservice.db.tables import (
    assignments,
    child_keys,
    children,
    consents,
    court_orders,
    guardianships,
    room_children,
    room_staff,
)
from keyservice.ids import new_id
from keyservice.keys import RootKeyProvider, generate_child_key


@dataclass(frozen=True)
class RelatedChild:
    child_id: str
    display_name: str
    room: str | None
    # assignment:<role> | guardian | consent | court_order
    relation: str


def create_child(
    db: Connection, root: RootKeyProvider, *, display_name: str, room: str | None, now: datetime
) -> str:
    child_id = new_id()
    db.execute(
        insert(children).values(
            child_id=child_id, display_name=display_name, room=room, created_at=now
        )
    )
    create_child_key(db, root, child_id=child_id, version=1, now=now)
    return child_id


def create_children(
    db: Connection,
    root: RootKeyProvider,
    made: Sequence[tuple[str, str, date | None, date | None]],
    *,
    now: datetime,
) -> None:
    """Many children at once, (id, name, date of birth, leaving date) each, with their first
    key versions: one provider call per child (as ``create_child``), then one insert per
    table (keyservice/db/bulk.py)."""
    insert_rows(
        db,
        children,
        [
            {
                "child_id": child_id,
                "display_name": name,
                "room": None,
                "created_at": now,
                "date_of_birth": born,
                "left_on": left,
            }
            for child_id, name, born, left in made
        ],
    )
    provider, version = root.identity(), root.current_version()
    insert_rows(
        db,
        child_keys,
        [
            {
                "child_id": child_id,
                "version": 1,
                "state": ACTIVE,
                "wrapped": generate_child_key(root, child_id=child_id, version=1)[1],
                "created_at": now,
                "root_provider": provider,
                "root_version": version,
            }
            for child_id, *_ in made
        ],
    )


def _room_children_of(staff_id: str, now: datetime) -> Any:
    """(child id, the staff member's room role) of the children in a room with them now."""
    return (
        select(room_children.c.child_id, room_staff.c.role)
        .select_from(
            room_staff.join(room_children, room_children.c.room_id == room_staff.c.room_id)
        )
        .where(
            room_staff.c.staff_id == staff_id,
            room_staff.c.valid_from <= now,
            or_(room_staff.c.valid_to.is_(None), room_staff.c.valid_to > now),
            room_children.c.valid_from <= now,
            or_(room_children.c.valid_to.is_(None), room_children.c.valid_to > now),
        )
    )


def related_children(db: Connection, principal_id: str, *, now: datetime) -> list[RelatedChild]:
    """Children the principal has a current relationship with, by name; nobody else's."""
    relation: dict[str, str] = {}
    for child_id, role in db.execute(
        select(assignments.c.child_id, assignments.c.role).where(
            assignments.c.staff_id == principal_id,
            assignments.c.valid_from <= now,
            or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
        )
    ):
        relation[child_id] = f"assignment:{role}"
    for child_id, role in db.execute(_room_children_of(principal_id, now)):
        relation.setdefault(child_id, f"room:{role}")
    for (child_id,) in db.execute(
        select(guardianships.c.child_id).where(
            guardianships.c.guardian_id == principal_id, guardianships.c.ended_at.is_(None)
        )
    ):
        relation[child_id] = "guardian"
    for (child_id,) in db.execute(
        select(consents.c.child_id).where(
            consents.c.recipient_id == principal_id,
            consents.c.valid_from <= now,
            consents.c.valid_to > now,
            consents.c.withdrawn_at.is_(None),
        )
    ):
        relation.setdefault(child_id, "consent")
    for (child_id,) in db.execute(
        select(court_orders.c.child_id).where(
            court_orders.c.subject_id == principal_id,
            court_orders.c.effect == "disclose",
            court_orders.c.valid_from <= now,
            court_orders.c.valid_to > now,
        )
    ):
        relation.setdefault(child_id, "court_order")
    rows = db.execute(
        select(children.c.child_id, children.c.display_name, children.c.room)
        .where(children.c.child_id.in_(relation))
        .order_by(children.c.display_name)
    ).all()
    return [
        RelatedChild(row.child_id, row.display_name, row.room, relation[row.child_id])
        for row in rows
    ]
