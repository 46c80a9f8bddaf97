"""Bulk changes to rooms and assignments from a CSV file (docs/decisions/0018-rooms-and-
imports.md): every row is validated before anything is written, and the whole file applies
or nothing does.

The header names the kind:

    assignments   staff_id,child_id,role,valid_from,valid_to   (direct assignments)
    staff         staff_id,room,role,valid_from,valid_to       (staff attached to rooms)
    children      child_id,room,valid_from,valid_to            (children in rooms)
    new_children  name,date_of_birth,left_on,room,valid_from   (children created)
    new_staff     name,roles,room,role,valid_from              (staff created, first codes)

A header that starts with ``name`` creates people (docs/decisions/0027-import-creates-
people.md): each row is a new child (with a first key version) or a new member of staff, and
its room membership. New children are created at once unless a room they join has staff
(then the whole file is one proposal); a new-staff file is always one proposal, and its people
and their first enrolment codes are made when an independent admin approves it, the codes
answered once to that approver. The new people's ids are chosen when the file is proposed
and kept in the proposal, so that approval plans the same diff.

``room`` is a room's name or id; dates are ``YYYY-MM-DD`` (midnight UTC) or ISO 8601 times
with an offset; an empty ``valid_from`` means now, an empty ``valid_to`` until ended. A row
matching a live membership (same person and room or child, and the same start or none
given) changes its end: earlier ends it, later extends it, the same leaves it. A child who
joins a room while in another ends the other on the day they join (a move).

``plan`` validates with a few set-loading queries whatever the file's size and returns the
diff; ``apply`` writes it with one executemany per table. A plan that gives anyone read rights
is stored as one proposal for the batch; approving re-plans the stored file against the world
as it is then and applies it only if the diff is still the one proposed.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, or_, select, update

from keyservice.catalog.children import create_children
from keyservice.db.bulk import insert_rows
from keyservice.db.tables import assignments, children, principals, room_children, room_staff, rooms
from keyservice.enrolment import issue_code
from keyservice.errors import InvalidChangeError
from keyservice.ids import new_id
from keyservice.keys import RootKeyProvider

HEADERS: dict[str, tuple[str, ...]] = {
    "assignments": ("staff_id", "child_id", "role", "valid_from", "valid_to"),
    "staff": ("staff_id", "room", "role", "valid_from", "valid_to"),
    "children": ("child_id", "room", "valid_from", "valid_to"),
    "new_children": ("name", "date_of_birth", "left_on", "room", "valid_from"),
    "new_staff": ("name", "roles", "room", "role", "valid_from"),
}
NEW_KINDS = frozenset({"new_children", "new_staff"})
ROLES = frozenset({"educator", "manager", "dsl"})
MAX_NAME = 200
MAX_ROWS = 20_000
# Bad rows listed in an answer (the audit entry keeps their line numbers, up to this many too).
MAX_REPORTED = 200
_ID = re.compile(r"^[0-9a-f]{32}$")

ADD, END, EXTEND = "add", "end", "extend"


@dataclass(frozen=True)
class BadRow:
    line: int
    code: str
    reason: str


class ImportInvalidError(InvalidChangeError):
    """The file has bad rows: nothing was changed. ``errors`` by line."""

    def __init__(self, kind: str | None, errors: Sequence[BadRow], rows: int) -> None:
        self.kind = kind
        self.errors = tuple(sorted(errors, key=lambda e: e.line))
        self.rows = rows
        first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more bad rows)" if len(self.errors) > 1 else ""
        super().__init__(f"line {first.line}: {first.reason}{more}; nothing was changed")


class StaleImportError(InvalidChangeError):
    """At approval the stored file no longer plans to the diff that was proposed."""


@dataclass(frozen=True)
class Step:
    """One change of the diff. ``membership_id``: the live row ended or extended (None for an
    added one); ``line``: the CSV line asking for it (for a move's automatic end, the line of
    the room the child joins)."""

    op: str
    line: int
    person_id: str
    target_id: str  # the room's id, or for an assignment the child's
    role: str | None
    valid_from: datetime
    valid_to: datetime | None
    membership_id: str | None = None

    def wire(self) -> list[Any]:
        return [
            self.op,
            self.line,
            self.person_id,
            self.target_id,
            self.role,
            self.valid_from.isoformat(),
            None if self.valid_to is None else self.valid_to.isoformat(),
            self.membership_id,
        ]


@dataclass(frozen=True)
class NewPerson:
    """A child or member of staff a file creates. ``roles``: a new member of staff's (space
    separated); the dates: a new child's."""

    line: int
    person_id: str
    display_name: str
    roles: str | None = None
    date_of_birth: date | None = None
    left_on: date | None = None


@dataclass(frozen=True)
class Plan:
    kind: str
    # The start of rows that give none: approval plans the file again from the same one.
    default_start: datetime
    rows: int
    steps: tuple[Step, ...]
    unchanged: int
    # Whoever gains read rights by it (empty: it applies at once).
    beneficiaries: frozenset[str] = field(default_factory=frozenset)
    # The people a ``new_children`` or ``new_staff`` file creates.
    people: tuple[NewPerson, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        ops = [s.op for s in self.steps]
        counted = {"rows": self.rows}
        if self.kind in NEW_KINDS:
            counted["created"] = len(self.people)
        return counted | {
            "added": ops.count(ADD),
            "ended": ops.count(END),
            "extended": ops.count(EXTEND),
            "unchanged": self.unchanged,
        }

    @property
    def gives_rights(self) -> bool:
        return bool(self.beneficiaries)

    def wire(self) -> list[list[Any]]:
        """The diff as stored in a proposal and compared at approval. The people a file
        creates are not in it: they follow from the file and the ids kept beside it."""
        return [s.wire() for s in self.steps]


@dataclass(frozen=True)
class IssuedCode:
    """A new member of staff's first enrolment code, answered once to whoever approved."""

    line: int
    principal_id: str
    display_name: str
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class _Row:
    line: int
    person_id: str
    target: str  # as written: a room's name or id, or a child's id
    role: str | None
    start_given: bool
    valid_from: datetime
    valid_to: datetime | None


@dataclass
class _Live:
    """A live membership or assignment, its end as the plan leaves it."""

    membership_id: str | None
    person_id: str
    target_id: str
    role: str | None
    valid_from: datetime
    valid_to: datetime | None


def _moment(text: str, default: datetime | None) -> datetime | None:
    text = text.strip()
    if not text:
        return default
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.utcoffset() is None:
        raise ValueError("a time needs a UTC offset")
    return moment


def _overlap(
    a_from: datetime, a_to: datetime | None, b_from: datetime, b_to: datetime | None
) -> bool:
    return (b_to is None or a_from < b_to) and (a_to is None or b_from < a_to)


def parse(text: str, *, default_start: datetime) -> tuple[str, list[Any], list[BadRow]]:
    """The file's kind, its well-formed rows (``_Row``, or ``_NewRow`` for the kinds that
    create people), and its badly formed ones (no database)."""
    # newline="": the csv module reads the line ends itself (a bare CR included).
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _parse_rows(reader, default_start)
    except csv.Error:
        # What the csv module itself refuses (a field over its size limit, say): the line
        # it stopped on is bad and nothing is imported.
        line = max(reader.line_num, 1)
        raise ImportInvalidError(
            None, [BadRow(line, "csv", "the line is not valid CSV (or a field is too long)")], 0
        ) from None


def _parse_rows(reader: Any, default_start: datetime) -> tuple[str, list[Any], list[BadRow]]:
    header = next(reader, None)
    names = tuple(h.strip().lower() for h in header or ())
    kind = next((k for k, wanted in HEADERS.items() if wanted == names), None)
    if kind is None:
        shapes = "; ".join(",".join(h) for h in HEADERS.values())
        raise ImportInvalidError(
            None, [BadRow(1, "header", f"the header must be one of: {shapes}")], 0
        )
    width = len(HEADERS[kind])
    rows: list[Any] = []
    bad: list[BadRow] = []
    count = 0
    read_row = _new_row if kind in NEW_KINDS else _row
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        count += 1
        if count > MAX_ROWS:
            raise ImportInvalidError(
                kind,
                [BadRow(line, "too_many_rows", f"a file holds at most {MAX_ROWS} rows")],
                count,
            )
        if len(cells) != width:
            bad.append(BadRow(line, "columns", f"expected {width} columns, found {len(cells)}"))
            continue
        parsed = read_row(kind, line, [c.strip() for c in cells], default_start)
        if isinstance(parsed, BadRow):
            bad.append(parsed)
        else:
            rows.append(parsed)
    if count == 0 and not bad:
        bad.append(BadRow(1, "empty", "the file has a header but no rows"))
    return kind, rows, bad


_BAD_DATE = "dates are YYYY-MM-DD or ISO 8601 times with an offset"


def _row(kind: str, line: int, cells: list[str], default_start: datetime) -> _Row | BadRow:
    """A row of a membership or assignments file."""
    person, target = cells[0], cells[1]
    role = cells[2] if kind != "children" else None
    start_text, end_text = cells[-2], cells[-1]
    if not _ID.match(person):
        return BadRow(line, "bad_id", f"{HEADERS[kind][0]} is not 32 lowercase hex")
    if kind == "assignments" and not _ID.match(target):
        return BadRow(line, "bad_id", "child_id is not 32 lowercase hex")
    if not target:
        return BadRow(line, "unknown_room", "the room is empty")
    if role is not None and role not in ROLES:
        return BadRow(line, "bad_role", f"role must be one of {', '.join(sorted(ROLES))}")
    try:
        start = _moment(start_text, default_start)
        end = _moment(end_text, None)
    except ValueError:
        return BadRow(line, "bad_date", _BAD_DATE)
    assert start is not None
    if end is not None and end <= start:
        return BadRow(line, "ends_before_start", "valid_to must be after valid_from")
    return _Row(line, person, target, role, bool(start_text), start, end)


@dataclass(frozen=True)
class _NewRow:
    """A row of a file that creates people: a new child or a new member of staff, and the
    room they join (``room`` empty: none; only a child may have none)."""

    line: int
    name: str
    roles: str | None
    date_of_birth: date | None
    left_on: date | None
    room: str
    role: str | None
    valid_from: datetime
    valid_to: datetime | None

    @property
    def key(self) -> tuple[str, date | None]:
        """Rows with the same key are the same person: the name (case aside), and for a
        child the date of birth."""
        return (self.name.lower(), self.date_of_birth)


def _day(text: str) -> date | None:
    if not text:
        return None
    if len(text) != 10:
        raise ValueError("a date is YYYY-MM-DD")
    return date.fromisoformat(text)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _new_row(kind: str, line: int, cells: list[str], default_start: datetime) -> _NewRow | BadRow:
    name = " ".join(cells[0].split())
    if not name:
        return BadRow(line, "missing_name", "the name is empty")
    if len(name) > MAX_NAME:
        return BadRow(line, "bad_name", f"a name has at most {MAX_NAME} characters")
    if kind == "new_children":
        _, birth_text, left_text, room, start_text = cells
        try:
            born, left = _day(birth_text), _day(left_text)
            start = _moment(start_text, default_start)
        except ValueError:
            return BadRow(line, "bad_date", _BAD_DATE)
        assert start is not None
        if born is not None and born > default_start.date():
            return BadRow(line, "bad_date", "date_of_birth is in the future")
        if born is not None and left is not None and left < born:
            return BadRow(line, "left_before_birth", "left_on is before date_of_birth")
        if not room and start_text:
            return BadRow(line, "unknown_room", "valid_from is a room's join date: give the room")
        end = None if left is None else _midnight(left)
        if room and end is not None and end <= start:
            return BadRow(
                line, "ends_before_start", "the child leaves (left_on) before joining the room"
            )
        return _NewRow(line, name, None, born, left, room, None, start, end)
    _, roles_text, room, role, start_text = cells
    if role not in ROLES:
        return BadRow(line, "bad_role", f"role must be one of {', '.join(sorted(ROLES))}")
    roles = set(roles_text.lower().replace(";", " ").split()) or {role}
    if "admin" in roles:
        return BadRow(
            line,
            "bad_role",
            "a new admin is proposed one at a time (carevault admin principal add), not imported",
        )
    if not roles <= ROLES:
        return BadRow(line, "bad_role", f"roles are among {', '.join(sorted(ROLES))}")
    if not room:
        return BadRow(line, "unknown_room", "a new member of staff needs a room")
    try:
        start = _moment(start_text, default_start)
    except ValueError:
        return BadRow(line, "bad_date", _BAD_DATE)
    assert start is not None
    return _NewRow(line, name, " ".join(sorted(roles)), None, None, room, role, start, None)


def _in(column: Any, values: Iterable[str]) -> Any:
    return column.in_(sorted(set(values)))


def _table(kind: str) -> tuple[Table, Any, Any, Any]:
    """The table, its id, person and target columns."""
    if kind == "assignments":
        return (
            assignments,
            assignments.c.assignment_id,
            assignments.c.staff_id,
            assignments.c.child_id,
        )
    if kind in ("staff", "new_staff"):
        return room_staff, room_staff.c.membership_id, room_staff.c.staff_id, room_staff.c.room_id
    return (
        room_children,
        room_children.c.membership_id,
        room_children.c.child_id,
        room_children.c.room_id,
    )


def _live_rows(
    db: Connection, table: Table, where: Any, id_col: Any, person: Any, target: Any, now: datetime
) -> list[_Live]:
    role = table.c.role if "role" in table.c else None
    columns = [id_col, person, target, table.c.valid_from, table.c.valid_to]
    if role is not None:
        columns.append(role)
    found = db.execute(
        select(*columns).where(where, or_(table.c.valid_to.is_(None), table.c.valid_to > now))
    )
    return [_Live(r[0], r[1], r[2], r[5] if role is not None else None, r[3], r[4]) for r in found]


def plan(
    db: Connection,
    text: str,
    *,
    proposer_id: str,
    now: datetime,
    default_start: datetime | None = None,
    new_ids: dict[str, str] | None = None,
) -> Plan:
    """Validate every row and work out the diff; ``ImportInvalidError`` lists every bad row.
    ``default_start`` (now unless given) is the start of rows that give none; ``new_ids``
    (by line) the ids of the people a file creates, when it was planned before."""
    kind, rows, bad = parse(text, default_start=default_start or now)
    count = len(rows) + len(bad)
    if kind in NEW_KINDS:
        return _plan_new(
            db,
            kind,
            rows,
            bad,
            count,
            now=now,
            default_start=default_start or now,
            new_ids=new_ids or {},
        )
    # Who and what the rows name, each kind loaded in one query.
    people = {r.person_id for r in rows}
    if kind == "children":
        known_people = set(
            db.execute(
                select(children.c.child_id).where(_in(children.c.child_id, people))
            ).scalars()
        )
    else:
        known_people = set(
            db.execute(
                select(principals.c.principal_id).where(
                    _in(principals.c.principal_id, people),
                    principals.c.kind == "staff",
                    principals.c.revoked_at.is_(None),
                )
            ).scalars()
        )
    if kind == "assignments":
        wanted = {r.target for r in rows}
        known_children = set(
            db.execute(
                select(children.c.child_id).where(_in(children.c.child_id, wanted))
            ).scalars()
        )
        room_of = {c: c for c in known_children}
    else:
        room_of = {}
        for room_id, name in db.execute(select(rooms.c.room_id, rooms.c.name)):
            room_of[room_id] = room_of[name] = room_id
    table, id_col, person_col, target_col = _table(kind)
    seen: dict[tuple[str, str], int] = {}
    good: list[tuple[_Row, str]] = []
    for row in rows:
        if row.person_id not in known_people:
            what = "child" if kind == "children" else "active member of staff"
            bad.append(BadRow(row.line, "unknown_person", f"no {what} with id {row.person_id}"))
            continue
        target_id = room_of.get(row.target)
        if target_id is None:
            if kind == "assignments":
                bad.append(BadRow(row.line, "unknown_child", f"no child with id {row.target}"))
            else:
                bad.append(BadRow(row.line, "unknown_room", f"no room named {row.target!r}"))
            continue
        if row.person_id == proposer_id:
            bad.append(BadRow(row.line, "self_grant", "a row cannot be about yourself"))
            continue
        key = (row.person_id, target_id)
        if key in seen:
            bad.append(BadRow(row.line, "duplicate", f"duplicate of line {seen[key]}"))
            continue
        seen[key] = row.line
        good.append((row, target_id))
    # The live rows of the people named (a child's in every room, for moves), in one query.
    live: dict[tuple[str, str], list[_Live]] = defaultdict(list)
    by_person: dict[str, list[_Live]] = defaultdict(list)
    for found in _live_rows(
        db,
        table,
        _in(person_col, {r.person_id for r, _ in good}),
        id_col,
        person_col,
        target_col,
        now,
    ):
        live[(found.person_id, found.target_id)].append(found)
        by_person[found.person_id].append(found)
    steps: list[Step] = []
    unchanged = 0
    added: list[tuple[Step, _Live]] = []
    for row, target_id in good:
        existing = sorted(live[(row.person_id, target_id)], key=lambda e: e.valid_from)
        match = next(
            (e for e in existing if not row.start_given or e.valid_from == row.valid_from), None
        )
        if match is None:
            clash = next(
                (
                    e
                    for e in existing
                    if _overlap(row.valid_from, row.valid_to, e.valid_from, e.valid_to)
                ),
                None,
            )
            if clash is not None:
                bad.append(
                    BadRow(
                        row.line,
                        "overlap",
                        f"overlaps {clash.membership_id} from {clash.valid_from.date()}: give its "
                        "start to change it, or end it first",
                    )
                )
                continue
            step = Step(
                ADD, row.line, row.person_id, target_id, row.role, row.valid_from, row.valid_to
            )
            fresh = _Live(None, row.person_id, target_id, row.role, row.valid_from, row.valid_to)
            by_person[row.person_id].append(fresh)
            added.append((step, fresh))
            steps.append(step)
            continue
        if row.role is not None and match.role != row.role:
            bad.append(
                BadRow(
                    row.line,
                    "role_differs",
                    f"{match.membership_id} has role {match.role}: end it and add the new role",
                )
            )
            continue
        if match.valid_to == row.valid_to:
            unchanged += 1
            continue
        if row.valid_to is not None and row.valid_to <= match.valid_from:
            bad.append(
                BadRow(
                    row.line, "ends_before_start", f"{match.membership_id} starts after that end"
                )
            )
            continue
        shorter = row.valid_to is not None and (
            match.valid_to is None or row.valid_to < match.valid_to
        )
        op = END if shorter else EXTEND
        step = Step(
            op,
            row.line,
            row.person_id,
            target_id,
            match.role,
            match.valid_from,
            row.valid_to,
            match.membership_id,
        )
        match.valid_to = row.valid_to
        steps.append(step)
        if op == EXTEND:
            added.append((step, match))
    if kind == "children":
        steps += _moves(added, by_person, bad)
    beneficiaries: dict[int, set[str]] = _rights(db, kind, added, now)
    for line, who in beneficiaries.items():
        if proposer_id in who:
            bad.append(BadRow(line, "self_grant", "this row would give you read rights"))
    if bad:
        raise ImportInvalidError(kind, bad, count)
    return Plan(
        kind,
        default_start or now,
        count,
        tuple(steps),
        unchanged,
        frozenset(p for who in beneficiaries.values() for p in who),
    )


def _moves(
    added: list[tuple[Step, _Live]], by_person: dict[str, list[_Live]], bad: list[BadRow]
) -> list[Step]:
    """A child joining a room while in another: the other ends the day they join, if it began
    before; any other overlap is a bad row."""
    ends: list[Step] = []
    for step, joined in added:
        for other in by_person[step.person_id]:
            if other is joined or other.target_id == joined.target_id:
                continue
            if not _overlap(joined.valid_from, joined.valid_to, other.valid_from, other.valid_to):
                continue
            if other.membership_id is not None and other.valid_from < joined.valid_from:
                other.valid_to = joined.valid_from
                ends.append(
                    Step(
                        END,
                        step.line,
                        other.person_id,
                        other.target_id,
                        None,
                        other.valid_from,
                        joined.valid_from,
                        other.membership_id,
                    )
                )
                continue
            bad.append(
                BadRow(
                    step.line,
                    "overlap",
                    "the child would be in two rooms at once (from "
                    f"{max(joined.valid_from, other.valid_from).date()})",
                )
            )
    return ends


def _rights(
    db: Connection, kind: str, added: list[tuple[Step, _Live]], now: datetime
) -> dict[int, set[str]]:
    """Who each adding or extending row gives read rights, by line: an assignment its staff;
    a room membership whoever it meets there (one query for the rooms' other side)."""
    found: dict[int, set[str]] = {}
    if not added:
        return found
    if kind == "assignments":
        for step, _ in added:
            found.setdefault(step.line, set()).add(step.person_id)
        return found
    rooms_named = {step.target_id for step, _ in added}
    other = room_children if kind == "staff" else room_staff
    other_person = other.c.child_id if kind == "staff" else other.c.staff_id
    side: dict[str, list[tuple[str, datetime, datetime | None]]] = defaultdict(list)
    for room_id, person, start, end in db.execute(
        select(other.c.room_id, other_person, other.c.valid_from, other.c.valid_to).where(
            _in(other.c.room_id, rooms_named),
            or_(other.c.valid_to.is_(None), other.c.valid_to > now),
        )
    ):
        side[room_id].append((person, start, end))
    for step, _ in added:
        met = {
            person
            for person, start, end in side[step.target_id]
            if _overlap(step.valid_from, step.valid_to, start, end)
        }
        if not met:
            continue
        who = {step.person_id} if kind == "staff" else met
        found.setdefault(step.line, set()).update(who)
    return found


def _plan_new(
    db: Connection,
    kind: str,
    rows: list[_NewRow],
    bad: list[BadRow],
    count: int,
    *,
    now: datetime,
    default_start: datetime,
    new_ids: dict[str, str],
) -> Plan:
    """The diff of a file that creates people: one query for people of the same names, one
    for the rooms, one for the rooms' staff (new children), whatever the file's size."""
    names = sorted({r.name.lower() for r in rows})
    if kind == "new_children":
        existing = {
            (name.lower(), born)
            for name, born in db.execute(
                select(children.c.display_name, children.c.date_of_birth).where(
                    func.lower(children.c.display_name).in_(names)
                )
            )
        }
    else:
        existing = {
            (name.lower(), None)
            for (name,) in db.execute(
                select(principals.c.display_name).where(
                    func.lower(principals.c.display_name).in_(names),
                    principals.c.kind == "staff",
                    principals.c.revoked_at.is_(None),
                )
            )
        }
    room_of: dict[str, str] = {}
    for room_id, name in db.execute(select(rooms.c.room_id, rooms.c.name)):
        room_of[room_id] = room_of[name] = room_id
    seen: dict[tuple[str, date | None], int] = {}
    people: list[NewPerson] = []
    steps: list[Step] = []
    added: list[tuple[Step, _Live]] = []
    born = " born on the same day" if kind == "new_children" else ""
    for row in rows:
        key = row.key
        if key in seen:
            bad.append(BadRow(row.line, "duplicate", f"same name{born} as line {seen[key]}"))
            continue
        seen[key] = row.line
        if key in existing:
            who = "a child" if kind == "new_children" else "an active member of staff"
            bad.append(BadRow(row.line, "exists", f"{who} with this name{born} already exists"))
            continue
        room_id = room_of.get(row.room) if row.room else None
        if row.room and room_id is None:
            bad.append(BadRow(row.line, "unknown_room", f"no room named {row.room!r}"))
            continue
        person_id = new_ids.get(str(row.line)) or new_id()
        people.append(
            NewPerson(row.line, person_id, row.name, row.roles, row.date_of_birth, row.left_on)
        )
        if room_id is None:
            continue
        step = Step(ADD, row.line, person_id, room_id, row.role, row.valid_from, row.valid_to)
        steps.append(step)
        added.append(
            (step, _Live(None, person_id, room_id, row.role, row.valid_from, row.valid_to))
        )
    if bad:
        raise ImportInvalidError(kind, bad, count)
    if kind == "new_children":
        # Whoever is in the rooms they join gains them: then it waits for a second person.
        beneficiaries = {p for who in _rights(db, "children", added, now).values() for p in who}
    else:
        # A new member of staff in a room has read rights (now, or when a child joins it), so
        # their first code may not come from the proposer alone (decision 0004): always a
        # proposal, and the approver receives the codes.
        beneficiaries = {p.person_id for p in people}
    return Plan(
        kind, default_start, count, tuple(steps), 0, frozenset(beneficiaries), tuple(people)
    )


def apply(
    db: Connection,
    planned: Plan,
    *,
    now: datetime,
    root: RootKeyProvider | None = None,
    approver: str | None = None,
    approver_device: str | None = None,
) -> tuple[IssuedCode, ...]:
    """Write the plan: the people it creates (new children with their first key version,
    new staff with a first code each, issued as seen by ``approver``: None, the host), then
    one executemany for the added memberships, one for the changed ends. The new staff's
    codes, to be answered once and kept nowhere but as their hashes."""
    codes: tuple[IssuedCode, ...] = ()
    if planned.kind == "new_children" and planned.people:
        if root is None:
            raise InvalidChangeError("creating children needs the root key")
        create_children(
            db,
            root,
            [(p.person_id, p.display_name, p.date_of_birth, p.left_on) for p in planned.people],
            now=now,
        )
    if planned.kind == "new_staff" and planned.people:
        insert_rows(
            db,
            principals,
            [
                {
                    "principal_id": p.person_id,
                    "kind": "staff",
                    "display_name": p.display_name,
                    "roles": p.roles or "",
                    "organisation": None,
                    "created_at": now,
                }
                for p in planned.people
            ],
        )
        codes = tuple(
            IssuedCode(
                p.line,
                p.person_id,
                p.display_name,
                *issue_code(
                    db,
                    principal_id=p.person_id,
                    now=now,
                    issued_by=approver,
                    issued_device=approver_device,
                    purpose="approved",
                ),
            )
            for p in planned.people
        )
    table, id_col, person_col, target_col = _table(planned.kind)
    new = [
        {
            id_col.name: new_id(),
            person_col.name: s.person_id,
            target_col.name: s.target_id,
            "valid_from": s.valid_from,
            "valid_to": s.valid_to,
            **({"role": s.role} if "role" in table.c else {}),
        }
        for s in planned.steps
        if s.op == ADD
    ]
    insert_rows(db, table, new)
    ends = [{"b_id": s.membership_id, "b_to": s.valid_to} for s in planned.steps if s.op != ADD]
    if ends:
        db.execute(
            update(table).where(id_col == bindparam("b_id")).values(valid_to=bindparam("b_to")),
            ends,
        )
    return codes


def replan(
    db: Connection,
    payload: dict[str, Any],
    *,
    proposer_id: str,
    now: datetime,
) -> Plan:
    """The stored file planned again at approval; ``StaleImportError`` if its diff changed."""
    planned = plan(
        db,
        payload["csv"],
        proposer_id=proposer_id,
        now=now,
        default_start=datetime.fromisoformat(payload["default_start"]),
        new_ids=payload.get("new_ids"),
    )
    if planned.wire() != payload["changes"]:
        raise StaleImportError(
            "the import's diff has changed since it was proposed (someone changed these "
            "rooms or assignments): reject it and propose the file again"
        )
    return planned


def payload(text: str, planned: Plan) -> dict[str, Any]:
    """What a proposal for ``planned`` stores: the file, its counts and its diff."""
    return {
        "kind": planned.kind,
        "default_start": planned.default_start.isoformat(),
        "csv": text,
        "counts": planned.counts,
        "changes": planned.wire(),
        "beneficiaries": sorted(planned.beneficiaries),
        **(
            {"new_ids": {str(p.line): p.person_id for p in planned.people}}
            if planned.kind in NEW_KINDS
            else {}
        ),
    }
