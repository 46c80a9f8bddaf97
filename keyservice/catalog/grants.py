"""Writing the relationships release decisions rest on, and ending them.

Each ``check_*`` raises ``InvalidChangeError`` (422) with what to change; each ``add_*``
checks first, then writes and returns the new row's id. Proposals are applied through these
same functions when they are approved, so a change is checked again against the world as it
is at approval, not as it was when proposed. Nothing is ever deleted: ending a relationship
stamps who ended it, when and why.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, or_, select, update

from keyservice.db.tables import (
    assignments,
    children,
    consents,
    court_orders,
    guardianships,
    principals,
)
from keyservice.errors import InvalidChangeError
from keyservice.ids import new_id

CONSENT_VALIDITY = timedelta(days=365)


def kind_of(db: Connection, principal_id: str) -> str | None:
    """The kind of an active principal, or None."""
    kind: str | None = db.execute(
        select(principals.c.kind).where(
            principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    return kind


def child_exists(db: Connection, child_id: str) -> bool:
    found = db.execute(select(children.c.child_id).where(children.c.child_id == child_id))
    return found.first() is not None


def is_guardian(db: Connection, *, guardian_id: str, child_id: str) -> bool:
    """A current guardian with parental responsibility."""
    found = db.execute(
        select(guardianships.c.guardianship_id).where(
            guardianships.c.guardian_id == guardian_id,
            guardianships.c.child_id == child_id,
            guardianships.c.parental_responsibility.is_(True),
            guardianships.c.ended_at.is_(None),
        )
    )
    return found.first() is not None


def window(
    valid_from: datetime | None, valid_to: datetime | None, *, now: datetime
) -> tuple[datetime, datetime | None]:
    """A validity window starting now by default; times must carry an offset."""
    start = valid_from or now
    for moment in (start, valid_to):
        if moment is not None and moment.utcoffset() is None:
            raise InvalidChangeError("times must carry a UTC offset")
    if valid_to is not None and valid_to <= start:
        raise InvalidChangeError("valid_to must be after valid_from")
    return start, valid_to


def _need_child(db: Connection, child_id: str) -> None:
    if not child_exists(db, child_id):
        raise InvalidChangeError("child_id is not a known child")


def add_assignment(
    db: Connection,
    *,
    staff_id: str,
    child_id: str,
    role: str,
    valid_from: datetime | None,
    valid_to: datetime | None,
    now: datetime,
) -> str:
    start, end = window(valid_from, valid_to, now=now)
    if kind_of(db, staff_id) != "staff":
        raise InvalidChangeError("staff_id is not an active staff member")
    _need_child(db, child_id)
    assignment_id = new_id()
    db.execute(
        insert(assignments).values(
            assignment_id=assignment_id,
            staff_id=staff_id,
            child_id=child_id,
            role=role,
            valid_from=start,
            valid_to=end,
        )
    )
    return assignment_id


def add_guardianship(
    db: Connection,
    *,
    guardian_id: str,
    child_id: str,
    parental_responsibility: bool,
    now: datetime,
) -> str:
    if kind_of(db, guardian_id) != "guardian":
        raise InvalidChangeError("guardian_id is not an active guardian")
    _need_child(db, child_id)
    guardianship_id = new_id()
    db.execute(
        insert(guardianships).values(
            guardianship_id=guardianship_id,
            guardian_id=guardian_id,
            child_id=child_id,
            parental_responsibility=parental_responsibility,
            created_at=now,
        )
    )
    return guardianship_id


def check_consent(
    db: Connection,
    *,
    child_id: str,
    given_by: str,
    recipient_id: str,
    replaces: str | None,
) -> None:
    if not is_guardian(db, guardian_id=given_by, child_id=child_id):
        raise InvalidChangeError("given_by is not a guardian with parental responsibility")
    if kind_of(db, recipient_id) != "external":
        raise InvalidChangeError("recipient_id is not an outside recipient")
    if replaces is not None and current_consent_child(db, replaces) != child_id:
        raise InvalidChangeError("replaces is not a current consent about this child")


def add_consent(
    db: Connection,
    *,
    child_id: str,
    given_by: str,
    recipient_id: str,
    categories: Sequence[str],
    purpose: str,
    valid_from: datetime | None,
    valid_to: datetime | None,
    evidence_record_id: str | None,
    replaces: str | None,
    by: str,
    now: datetime,
) -> str:
    check_consent(
        db, child_id=child_id, given_by=given_by, recipient_id=recipient_id, replaces=replaces
    )
    start, end = window(valid_from, valid_to, now=now)
    # 606 CMR 7.04(9): a consent lasts at most a year unless withdrawn.
    latest = start + CONSENT_VALIDITY
    if end is not None and end > latest:
        raise InvalidChangeError("a consent lasts at most one year; give an earlier valid_to")
    consent_id = new_id()
    db.execute(
        insert(consents).values(
            consent_id=consent_id,
            child_id=child_id,
            given_by=given_by,
            recipient_id=recipient_id,
            categories=" ".join(sorted(set(categories))),
            purpose=purpose,
            valid_from=start,
            valid_to=end or latest,
            evidence_record_id=evidence_record_id,
            replaces=replaces,
        )
    )
    if replaces is not None:
        withdraw_consent(db, replaces, by=by, reason=f"corrected by consent {consent_id}", now=now)
    return consent_id


def current_consent_child(db: Connection, consent_id: str) -> str | None:
    """The child of a consent that has not been withdrawn, or None."""
    child_id: str | None = db.execute(
        select(consents.c.child_id).where(
            consents.c.consent_id == consent_id, consents.c.withdrawn_at.is_(None)
        )
    ).scalar_one_or_none()
    return child_id


def withdraw_consent(
    db: Connection, consent_id: str, *, by: str, reason: str | None, now: datetime
) -> bool:
    done = db.execute(
        update(consents)
        .where(consents.c.consent_id == consent_id, consents.c.withdrawn_at.is_(None))
        .values(withdrawn_at=now, withdrawn_by=by, withdraw_reason=reason)
    )
    return done.rowcount == 1


def check_court_order(
    db: Connection, *, child_id: str, effect: str, subject_id: str, replaces: str | None
) -> None:
    _need_child(db, child_id)
    wanted = "external" if effect == "disclose" else "guardian"
    if kind_of(db, subject_id) != wanted:
        raise InvalidChangeError(
            f"the subject of a {effect} order must be an active {wanted} principal"
        )
    if effect == "restrict_guardian" and not _guardian_of(db, subject_id, child_id):
        raise InvalidChangeError("the subject of a restrict order must be a guardian of this child")
    if replaces is not None:
        current = current_court_order(db, replaces)
        if current is None or current[0] != child_id:
            raise InvalidChangeError("replaces is not a current court order about this child")


def add_court_order(
    db: Connection,
    *,
    child_id: str,
    effect: str,
    subject_id: str,
    categories: Sequence[str],
    reference: str,
    valid_from: datetime,
    valid_to: datetime,
    evidence_record_id: str | None,
    replaces: str | None,
    by: str,
    now: datetime,
    guardians_told: bool = True,
) -> str:
    check_court_order(
        db, child_id=child_id, effect=effect, subject_id=subject_id, replaces=replaces
    )
    start, end = window(valid_from, valid_to, now=now)
    assert end is not None
    court_order_id = new_id()
    db.execute(
        insert(court_orders).values(
            court_order_id=court_order_id,
            child_id=child_id,
            effect=effect,
            subject_id=subject_id,
            categories=" ".join(sorted(set(categories))),
            reference=reference,
            valid_from=start,
            valid_to=end,
            evidence_record_id=evidence_record_id,
            replaces=replaces,
            guardians_told=guardians_told,
        )
    )
    if replaces is not None:
        end_court_order(
            db, replaces, by=by, reason=f"corrected by court order {court_order_id}", now=now
        )
    return court_order_id


def _guardian_of(db: Connection, guardian_id: str, child_id: str) -> bool:
    """A current guardianship, with parental responsibility or without."""
    found = db.execute(
        select(guardianships.c.guardianship_id).where(
            guardianships.c.guardian_id == guardian_id,
            guardianships.c.child_id == child_id,
            guardianships.c.ended_at.is_(None),
        )
    )
    return found.first() is not None


def let_back_in(
    db: Connection,
    *,
    replaces: str | None,
    effect: str,
    subject_id: str,
    categories: Collection[str],
    valid_from: datetime,
    valid_to: datetime,
    now: datetime,
) -> str | None:
    """The guardian a correction would let read more than the order it replaces: the replaced
    order's subject, unless the new order keeps the same guardian out of at least the same
    categories for at least as long. None when nobody gains (a correction that may take effect
    at once); otherwise the change gives rights back and waits for a second person."""
    if replaces is None:
        return None
    old = db.execute(
        select(
            court_orders.c.effect,
            court_orders.c.subject_id,
            court_orders.c.categories,
            court_orders.c.valid_from,
            court_orders.c.valid_to,
        ).where(court_orders.c.court_order_id == replaces, court_orders.c.ended_at.is_(None))
    ).first()
    if old is None or old.effect != "restrict_guardian":
        return None
    covers = (
        effect == "restrict_guardian"
        and subject_id == old.subject_id
        and set(old.categories.split()) <= set(categories)
        and valid_from <= max(old.valid_from, now)
        and valid_to >= old.valid_to
    )
    return None if covers else str(old.subject_id)


def current_court_order(db: Connection, court_order_id: str) -> tuple[str, str] | None:
    """``(child_id, effect)`` of an order that has not been ended, or None."""
    row = db.execute(
        select(court_orders.c.child_id, court_orders.c.effect).where(
            court_orders.c.court_order_id == court_order_id, court_orders.c.ended_at.is_(None)
        )
    ).first()
    return None if row is None else (row.child_id, row.effect)


def end_court_order(
    db: Connection, court_order_id: str, *, by: str, reason: str, now: datetime
) -> bool:
    """End the order now: its window closes, so every rule stops counting it at once."""
    row = db.execute(
        select(court_orders.c.valid_from, court_orders.c.valid_to).where(
            court_orders.c.court_order_id == court_order_id, court_orders.c.ended_at.is_(None)
        )
    ).first()
    if row is None:
        return False
    # An order that has not started yet closes where it would have started.
    closes = max(row.valid_from, min(row.valid_to, now))
    done = db.execute(
        update(court_orders)
        .where(court_orders.c.court_order_id == court_order_id, court_orders.c.ended_at.is_(None))
        .values(valid_to=closes, ended_at=now, ended_by=by, end_reason=reason)
    )
    return done.rowcount == 1


def current_guardianship_child(db: Connection, guardianship_id: str) -> str | None:
    child_id: str | None = db.execute(
        select(guardianships.c.child_id).where(
            guardianships.c.guardianship_id == guardianship_id,
            guardianships.c.ended_at.is_(None),
        )
    ).scalar_one_or_none()
    return child_id


def end_guardianship(
    db: Connection, guardianship_id: str, *, by: str, reason: str, now: datetime
) -> bool:
    done = db.execute(
        update(guardianships)
        .where(
            guardianships.c.guardianship_id == guardianship_id,
            guardianships.c.ended_at.is_(None),
        )
        .values(ended_at=now, ended_by=by, end_reason=reason)
    )
    return done.rowcount == 1


def end_assignment(db: Connection, assignment_id: str, *, now: datetime) -> bool:
    done = db.execute(
        update(assignments)
        .where(
            assignments.c.assignment_id == assignment_id,
            or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
        )
        .values(valid_to=now)
    )
    return done.rowcount == 1


def add_principal(
    db: Connection,
    *,
    kind: str,
    display_name: str,
    roles: Sequence[str],
    organisation: str | None,
    now: datetime,
) -> str:
    if kind != "staff" and roles:
        raise InvalidChangeError("only staff principals have roles")
    if kind == "staff" and not roles:
        raise InvalidChangeError("a staff principal needs at least one role")
    if kind == "external" and not organisation:
        raise InvalidChangeError("an external recipient needs an organisation")
    principal_id = new_id()
    db.execute(
        insert(principals).values(
            principal_id=principal_id,
            kind=kind,
            display_name=display_name,
            roles=" ".join(sorted(set(roles))),
            organisation=organisation,
            created_at=now,
        )
    )
    return principal_id
