"""Bodies of rooms and bulk imports (docs/API.md, docs/decisions/0018-rooms-and-imports.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from keyservice.api.schemas import AssignmentRole, Id, Strict

# A 20,000-row file of the widest kind, with full ISO times, fits (keyservice/bodylimit.py).
MAX_CSV = 4 * 1024 * 1024 - 4096


class RoomCreate(Strict):
    name: str = Field(min_length=1, max_length=100)


class RoomPublic(BaseModel):
    room_id: str
    name: str
    created_at: datetime
    staff_now: int
    children_now: int


class MembershipPublic(BaseModel):
    membership_id: str
    room_id: str
    kind: Literal["staff", "child"]
    person_id: str
    role: str | None
    valid_from: datetime
    valid_to: datetime | None


class RoomDetailPublic(RoomPublic):
    memberships: list[MembershipPublic] = Field(
        description="current and scheduled memberships (not those already ended)"
    )


class StaffJoin(Strict):
    staff_id: Id
    role: AssignmentRole
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    dry_run: bool = False


class ChildJoin(Strict):
    """A child joins the room; if in another room then, that membership ends on this start."""

    child_id: Id
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    dry_run: bool = False


class MembershipEnd(Strict):
    # When it ends: now by default; a later time schedules the end.
    at: datetime | None = None


class ImportRequest(Strict):
    csv: str = Field(min_length=1, max_length=MAX_CSV)
    dry_run: bool = False


class ChangePublic(BaseModel):
    """One row of an import's diff."""

    op: Literal["add", "end", "extend"]
    line: int
    person_id: str
    target_id: str = Field(description="the room's id, or for an assignment the child's")
    role: str | None
    valid_from: datetime
    valid_to: datetime | None
    membership_id: str | None = Field(description="the live membership ended or extended")


class NewPersonPublic(BaseModel):
    """A child or member of staff a ``new_children`` or ``new_staff`` file creates
    (docs/decisions/0027-import-creates-people.md)."""

    line: int
    person_id: str = Field(description="the id they get (a dry run's are examples)")
    display_name: str
    roles: list[str] = Field(description="a new member of staff's; empty for a child")
    date_of_birth: date | None
    left_on: date | None


class ImportPublic(BaseModel):
    kind: Literal["assignments", "staff", "children", "new_children", "new_staff"]
    dry_run: bool
    applied: bool
    # Whether it gives anyone read rights, and so would wait for a second person.
    gives_rights: bool
    counts: dict[str, int]
    changes: list[ChangePublic]
    # The people it creates, before their room memberships in ``changes``.
    people: list[NewPersonPublic] = Field(default_factory=list)
