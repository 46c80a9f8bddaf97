"""Rooms and bulk imports, for admins (docs/decisions/0018-rooms-and-imports.md).

Staff are attached to a room with a role and children join and leave it; a member of staff
reads a room's children while both are in it. Joining a room or importing a CSV that gives
anyone read rights returns a pending ``Proposal`` for the whole batch, which an independent
second admin approves; anything else is applied at once and returns its ``ImportDiff``.
A file with bad rows raises ``KeyServiceRequestError`` (422) whose ``problem["errors"]``
lists each bad row: ``{"line", "code", "reason"}``. Nothing was changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from vault.client import wire
from vault.client.fields import Fields, MalformedAnswer
from vault.client.models import Proposal
from vault.client.transport import KeyServiceTransport


@dataclass(frozen=True)
class RoomInfo:
    room_id: str
    name: str
    created_at: datetime
    staff_now: int
    children_now: int


@dataclass(frozen=True)
class RoomMembership:
    membership_id: str
    room_id: str
    kind: str  # staff | child
    person_id: str
    role: str | None
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True)
class RoomDetail:
    room: RoomInfo
    memberships: tuple[RoomMembership, ...]


@dataclass(frozen=True)
class ImportChange:
    """One row of a diff: ``op`` add | end | extend; ``target_id`` a room's id or, for an
    assignment, a child's."""

    op: str
    line: int
    person_id: str
    target_id: str
    role: str | None
    valid_from: datetime
    valid_to: datetime | None
    membership_id: str | None


@dataclass(frozen=True)
class NewPerson:
    """A child or member of staff a ``name,…`` file creates (decision 0027); ``person_id``
    is the id they get (in a dry run, an example)."""

    line: int
    person_id: str
    display_name: str
    roles: tuple[str, ...]
    date_of_birth: date | None
    left_on: date | None


@dataclass(frozen=True)
class ImportDiff:
    kind: str
    dry_run: bool
    applied: bool
    gives_rights: bool
    counts: dict[str, int]
    changes: tuple[ImportChange, ...]
    people: tuple[NewPerson, ...] = ()


def _opt_day(fields: Fields, name: str) -> date | None:
    text = fields.opt_text(name)
    try:
        return None if text is None else date.fromisoformat(text)
    except ValueError:
        raise MalformedAnswer(f"a new person: {name} is not a date") from None


def _room_info(fields: Fields) -> RoomInfo:
    return RoomInfo(
        room_id=fields.text("room_id"),
        name=fields.text("name"),
        created_at=fields.time("created_at"),
        staff_now=fields.integer("staff_now"),
        children_now=fields.integer("children_now"),
    )


def room_info(body: object) -> RoomInfo:
    return _room_info(Fields(body, "a room"))


def room_detail(body: object) -> RoomDetail:
    fields = Fields(body, "a room")
    return RoomDetail(
        room=_room_info(fields),
        memberships=tuple(
            RoomMembership(
                membership_id=m.text("membership_id"),
                room_id=m.text("room_id"),
                kind=m.text("kind"),
                person_id=m.text("person_id"),
                role=m.opt_text("role"),
                valid_from=m.time("valid_from"),
                valid_to=m.opt_time("valid_to"),
            )
            for m in fields.items("memberships", "a room membership")
        ),
    )


def import_diff(body: object) -> ImportDiff:
    fields = Fields(body, "an import's diff")
    counts = fields.mapping("counts")
    if not all(isinstance(v, int) for v in counts.values()):
        raise MalformedAnswer("an import's diff: counts are not integers")
    return ImportDiff(
        kind=fields.text("kind"),
        dry_run=fields.flag("dry_run", default=False),
        applied=fields.flag("applied", default=False),
        gives_rights=fields.flag("gives_rights", default=False),
        counts={str(k): int(str(v)) for k, v in counts.items()},
        changes=tuple(
            ImportChange(
                op=c.text("op"),
                line=c.integer("line"),
                person_id=c.text("person_id"),
                target_id=c.text("target_id"),
                role=c.opt_text("role"),
                valid_from=c.time("valid_from"),
                valid_to=c.opt_time("valid_to"),
                membership_id=c.opt_text("membership_id"),
            )
            for c in fields.items("changes", "a change")
        ),
        people=tuple(
            NewPerson(
                line=p.integer("line"),
                person_id=p.text("person_id"),
                display_name=p.text("display_name"),
                roles=p.texts("roles", optional=True),
                date_of_birth=_opt_day(p, "date_of_birth"),
                left_on=_opt_day(p, "left_on"),
            )
            for p in (fields.items("people", "a new person") if "people" in fields.whole() else [])
        ),
    )


class RoomCalls:
    """Mixed into ``Client``; every call is signed by the client's device."""

    _api: KeyServiceTransport

    def create_room(self, name: str) -> RoomInfo:
        return self._api.post("/v1/admin/rooms", room_info, {"name": name})

    def rooms(self) -> list[RoomInfo]:
        return self._api.get("/v1/admin/rooms", wire.listed(room_info, "rooms"))

    def room(self, room: str) -> RoomDetail:
        """A room by id or name, with its current and scheduled memberships."""
        return self._api.get(f"/v1/admin/rooms/{room}", room_detail)

    def room_add_staff(
        self,
        room_id: str,
        staff_id: str,
        *,
        role: str,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        dry_run: bool = False,
    ) -> ImportDiff | Proposal:
        body = wire.drop_none(
            {
                "staff_id": staff_id,
                "role": role,
                "valid_from": wire.wire_time(valid_from),
                "valid_to": wire.wire_time(valid_to),
                "dry_run": dry_run,
            }
        )
        return self._api.propose(f"/v1/admin/rooms/{room_id}/staff", import_diff, body)

    def room_add_child(
        self,
        room_id: str,
        child_id: str,
        *,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        dry_run: bool = False,
    ) -> ImportDiff | Proposal:
        """The child joins the room; if in another room then, that one ends on this start."""
        body = wire.drop_none(
            {
                "child_id": child_id,
                "valid_from": wire.wire_time(valid_from),
                "valid_to": wire.wire_time(valid_to),
                "dry_run": dry_run,
            }
        )
        return self._api.propose(f"/v1/admin/rooms/{room_id}/children", import_diff, body)

    def end_room_membership(self, membership_id: str, *, at: datetime | None = None) -> None:
        """End a staff or child membership now, or on a later date; never waits."""
        body = wire.drop_none({"at": wire.wire_time(at)})
        self._api.post(f"/v1/admin/room-memberships/{membership_id}/end", wire.nothing, body)

    def import_csv(self, csv_text: str, *, dry_run: bool = False) -> ImportDiff | Proposal:
        """Import an assignments, staff or children CSV (its header names which; one that
        starts with ``name`` creates the children or staff it lists): all rows or none.
        ``dry_run`` returns the diff and changes nothing. An approved import that created
        staff carries their first codes in the approver's ``Proposal.enrolment_codes``."""
        return self._api.propose(
            "/v1/admin/imports", import_diff, {"csv": csv_text, "dry_run": dry_run}
        )
