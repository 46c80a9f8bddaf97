"""Retention: a child's date of birth and leaving date, and what is due for shredding under
the deployment's retention rules (keyservice/policy/retention.py; decision 0019).

The report lists ids, categories, dates and rules only: never a name or a record's content.
A record of several children is due once it is due for every one of them (it is still needed
while any child's retention runs); a child is due once every record of theirs is and the
rule for ``*`` is met for the child themselves.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, select, update

from keyservice.caller import Caller
from keyservice.catalog.changes import judge
from keyservice.catalog.child_keys import DESTROYED
from keyservice.db.tables import (
    child_keys,
    children,
    legal_holds,
    record_children,
    records,
    shred_requests,
)
from keyservice.errors import DeniedError
from keyservice.policy.retention import RetentionRule, rule_for
from keyservice.policy.writes import Change

OPEN_STATES = ("pending", "approved")
UNKNOWN_CHILD = "no child with this id"


@dataclass(frozen=True)
class DueItem:
    """A record (or a whole child) whose retention is over, and the rule that made it due."""

    kind: str  # record | child
    record_id: str | None
    child_id: str | None
    child_ids: tuple[str, ...]
    category: str | None
    rule: str
    due_on: date
    on_hold: bool
    shred_open: bool


@dataclass(frozen=True)
class ChildDates:
    child_id: str
    date_of_birth: date | None
    left_on: date | None


def set_dates(
    db: Connection,
    caller: Caller,
    child_id: str,
    *,
    date_of_birth: date | None,
    left_on: date | None,
    now: datetime,
) -> ChildDates:
    """Record the child's dates (either may be None: unknown, or cleared). By an admin or a
    manager/DSL of the child; an unknown child is a 404 for everyone."""
    detail = {"child_id": child_id}
    exists = db.execute(select(children.c.child_id).where(children.c.child_id == child_id)).first()
    if exists is None:
        raise DeniedError(
            UNKNOWN_CHILD, action=Change.CHILD_DATES.value, detail={**detail, "reason": "unknown"}
        )
    if not judge(db, caller, Change.CHILD_DATES, child_id=child_id, now=now).allowed:
        raise DeniedError(
            "a child's dates are set by an admin or by a manager or DSL of the child",
            action=Change.CHILD_DATES.value,
            detail={**detail, "reason": "no_standing"},
            status=403,
        )
    if date_of_birth is not None and left_on is not None and left_on < date_of_birth:
        raise DeniedError(
            "the leaving date is before the date of birth: check both dates",
            action=Change.CHILD_DATES.value,
            detail={**detail, "reason": "left_before_birth"},
            status=422,
        )
    db.execute(
        update(children)
        .where(children.c.child_id == child_id)
        .values(date_of_birth=date_of_birth, left_on=left_on)
    )
    return ChildDates(child_id, date_of_birth, left_on)


def due(db: Connection, rules: dict[str, RetentionRule], *, today: date) -> list[DueItem]:
    """Every record and child whose retention is over on ``today``, oldest due first."""
    dates = {
        row.child_id: (row.date_of_birth, row.left_on)
        for row in db.execute(
            select(children.c.child_id, children.c.date_of_birth, children.c.left_on)
        )
    }
    held = set(
        db.execute(
            select(legal_holds.c.child_id).where(legal_holds.c.lifted_at.is_(None))
        ).scalars()
    )
    open_records: set[str] = set()
    open_children: set[str] = set()
    for open_record, open_child in db.execute(
        select(shred_requests.c.record_id, shred_requests.c.child_id).where(
            shred_requests.c.state.in_(OPEN_STATES)
        )
    ):
        if open_record is not None:
            open_records.add(open_record)
        if open_child is not None:
            open_children.add(open_child)
    shredded = _shredded_children(db)
    of_record: dict[str, list[str]] = defaultdict(list)
    category: dict[str, str] = {}
    for row in db.execute(
        select(records.c.record_id, records.c.category, record_children.c.child_id)
        .join(record_children, record_children.c.record_id == records.c.record_id)
        .where(records.c.deleted_at.is_(None))
        .order_by(records.c.record_id, record_children.c.child_id)
    ):
        of_record[row.record_id].append(row.child_id)
        category[row.record_id] = row.category

    found: list[DueItem] = []
    # Per child: whether every record of theirs is due, and the latest date among them.
    child_ok: dict[str, bool] = defaultdict(lambda: True)
    child_latest: dict[str, tuple[date, str]] = {}
    for record_id, child_ids in of_record.items():
        rule = rule_for(rules, category[record_id])
        ends = [rule.due_on(date_of_birth=dates[c][0], left_on=dates[c][1]) for c in child_ids]
        known = [end for end in ends if end is not None]
        due_on = max(known) if len(known) == len(ends) else None
        for child_id, end in zip(child_ids, ends, strict=True):
            if end is None or end > today:
                child_ok[child_id] = False
            elif child_latest.get(child_id, (date.min, ""))[0] < end:
                child_latest[child_id] = (end, rule.text)
        if due_on is None or due_on > today:
            continue
        found.append(
            DueItem(
                kind="record",
                record_id=record_id,
                child_id=None,
                child_ids=tuple(child_ids),
                category=category[record_id],
                rule=rule.text,
                due_on=due_on,
                on_hold=any(c in held for c in child_ids),
                shred_open=record_id in open_records,
            )
        )
    default = rules["*"]
    for child_id, (date_of_birth, left_on) in dates.items():
        own = default.due_on(date_of_birth=date_of_birth, left_on=left_on)
        if own is None or own > today or not child_ok[child_id] or child_id in shredded:
            continue
        due_on, rule_text = max(
            (own, default.text), child_latest.get(child_id, (own, default.text))
        )
        found.append(
            DueItem(
                kind="child",
                record_id=None,
                child_id=child_id,
                child_ids=(child_id,),
                category=None,
                rule=rule_text,
                due_on=due_on,
                on_hold=child_id in held,
                shred_open=child_id in open_children,
            )
        )
    return sorted(
        found, key=lambda item: (item.due_on, item.kind, item.record_id or "", item.child_id or "")
    )


def _shredded_children(db: Connection) -> set[str]:
    """Children none of whose key versions is left."""
    live = set(
        db.execute(select(child_keys.c.child_id).where(child_keys.c.state != DESTROYED)).scalars()
    )
    return set(db.execute(select(children.c.child_id)).scalars()) - live
