"""Loading what the write rules (keyservice/policy/writes.py) judge people by."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, or_, select, union_all, update

from keyservice.caller import Caller
from keyservice.db.tables import (
    assignments,
    consents,
    court_orders,
    devices,
    enrolment_codes,
    guardianships,
    notifications,
    principals,
    room_children,
    room_staff,
)
from keyservice.policy.writes import Person


def circle_of(db: Connection, principal_id: str, *, now: datetime) -> frozenset[str]:
    """The principal and everyone who saw a code that enrolled, or could still enrol, one of
    their devices: whoever might be acting as them."""
    vouchers = db.execute(
        select(devices.c.vouched_by).where(
            devices.c.principal_id == principal_id,
            devices.c.revoked_at.is_(None),
            devices.c.vouched_by.is_not(None),
        )
    ).scalars()
    unused = db.execute(
        select(enrolment_codes.c.issued_by).where(
            enrolment_codes.c.principal_id == principal_id,
            enrolment_codes.c.used_at.is_(None),
            enrolment_codes.c.expires_at > now,
            enrolment_codes.c.issued_by.is_not(None),
        )
    ).scalars()
    return frozenset({principal_id, *vouchers, *unused})


def child_roles(
    db: Connection, *, staff_id: str, child_id: str | None, now: datetime
) -> frozenset[str]:
    """The roles of the staff member's current assignments to the child."""
    if child_id is None:
        return frozenset()
    direct = select(assignments.c.role).where(
        assignments.c.staff_id == staff_id,
        assignments.c.child_id == child_id,
        assignments.c.valid_from <= now,
        or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
    )
    # A room role counts while both the staff member and the child are in the room.
    by_room = (
        select(room_staff.c.role)
        .select_from(
            room_staff.join(room_children, room_children.c.room_id == room_staff.c.room_id)
        )
        .where(
            room_staff.c.staff_id == staff_id,
            room_children.c.child_id == child_id,
            room_staff.c.valid_from <= now,
            or_(room_staff.c.valid_to.is_(None), room_staff.c.valid_to > now),
            room_children.c.valid_from <= now,
            or_(room_children.c.valid_to.is_(None), room_children.c.valid_to > now),
        )
    )
    return frozenset(db.execute(union_all(direct, by_room)).scalars())


def caller_as_person(
    db: Connection, caller: Caller, *, child_id: str | None, now: datetime
) -> Person:
    return Person(
        principal_id=caller.principal_id,
        kind=caller.kind,
        roles=caller.roles,
        circle=circle_of(db, caller.principal_id, now=now),
        child_roles=child_roles(db, staff_id=caller.principal_id, child_id=child_id, now=now)
        if caller.kind == "staff"
        else frozenset(),
    )


def person(
    db: Connection, principal_id: str, *, child_id: str | None, now: datetime
) -> Person | None:
    """The active principal ``principal_id`` as a Person, or None."""
    row = db.execute(
        select(principals.c.kind, principals.c.roles).where(
            principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Person(
        principal_id=principal_id,
        kind=row.kind,
        roles=frozenset(row.roles.split()),
        circle=circle_of(db, principal_id, now=now),
        child_roles=child_roles(db, staff_id=principal_id, child_id=child_id, now=now)
        if row.kind == "staff"
        else frozenset(),
    )


def other_active_admins(db: Connection, *, besides: str) -> int:
    roles = db.execute(
        select(principals.c.roles).where(
            principals.c.kind == "staff",
            principals.c.revoked_at.is_(None),
            principals.c.principal_id != besides,
        )
    ).scalars()
    return sum(1 for text in roles if "admin" in text.split())


def has_devices(db: Connection, principal_id: str) -> bool:
    """Whether the principal ever enrolled a device (revoked ones count)."""
    count = db.execute(
        select(func.count()).select_from(devices).where(devices.c.principal_id == principal_id)
    ).scalar_one()
    return bool(count)


def has_read_rights(db: Connection, principal_id: str, *, now: datetime) -> bool:
    """Whether any relationship gives, or will give, the principal something to read."""
    checks = (
        select(assignments.c.assignment_id).where(
            assignments.c.staff_id == principal_id,
            or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
        ),
        # A room membership: it gives them whichever children are (or come) into the room.
        select(room_staff.c.membership_id).where(
            room_staff.c.staff_id == principal_id,
            or_(room_staff.c.valid_to.is_(None), room_staff.c.valid_to > now),
        ),
        select(guardianships.c.guardianship_id).where(
            guardianships.c.guardian_id == principal_id, guardianships.c.ended_at.is_(None)
        ),
        select(consents.c.consent_id).where(
            consents.c.recipient_id == principal_id,
            consents.c.withdrawn_at.is_(None),
            consents.c.valid_to > now,
        ),
        select(court_orders.c.court_order_id).where(
            court_orders.c.subject_id == principal_id,
            court_orders.c.effect == "disclose",
            court_orders.c.valid_to > now,
        ),
    )
    return any(db.execute(check.limit(1)).first() is not None for check in checks)


def code_waiting_from_another(
    db: Connection, principal_id: str, *, besides: str, now: datetime
) -> bool:
    """Whether an unused, unexpired code for the principal came from someone other than
    ``besides`` (the host included): a second first code would let whoever holds it enrol a
    device beside the person's own, before anyone is given rights."""
    found = db.execute(
        select(enrolment_codes.c.code_hash)
        .where(
            enrolment_codes.c.principal_id == principal_id,
            enrolment_codes.c.used_at.is_(None),
            enrolment_codes.c.expires_at > now,
            or_(enrolment_codes.c.issued_by.is_(None), enrolment_codes.c.issued_by != besides),
        )
        .limit(1)
    ).first()
    return found is not None


def active_devices(db: Connection, principal_id: str) -> Sequence[Row[*tuple[Any, ...]]]:
    """The principal's devices not revoked, oldest first, with who vouched for each."""
    return db.execute(
        select(
            devices.c.device_id,
            devices.c.name,
            devices.c.origin,
            devices.c.vouched_by,
            devices.c.created_at,
        )
        .where(devices.c.principal_id == principal_id, devices.c.revoked_at.is_(None))
        .order_by(devices.c.created_at)
    ).all()


def void_codes(db: Connection, principal_id: str, *, now: datetime) -> int:
    """Make every unused code for the principal unusable from now; how many there were."""
    done = db.execute(
        update(enrolment_codes)
        .where(
            enrolment_codes.c.principal_id == principal_id,
            enrolment_codes.c.used_at.is_(None),
            enrolment_codes.c.expires_at > now,
        )
        .values(expires_at=now)
    )
    return done.rowcount


def revoke_devices(db: Connection, principal_id: str, *, now: datetime) -> int:
    """Revoke every device of the principal; how many were active."""
    done = db.execute(
        update(devices)
        .where(devices.c.principal_id == principal_id, devices.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return done.rowcount


def devices_of(db: Connection, principal_id: str) -> Sequence[Row[*tuple[Any, ...]]]:
    """Every device enrolled for the principal, revoked ones included, newest first."""
    return db.execute(
        select(devices)
        .where(devices.c.principal_id == principal_id)
        .order_by(devices.c.created_at.desc())
    ).all()


def notifications_of(
    db: Connection, principal_id: str, *, limit: int = 200
) -> Sequence[Row[*tuple[Any, ...]]]:
    """The principal's newest notifications first."""
    return db.execute(
        select(notifications)
        .where(notifications.c.principal_id == principal_id)
        .order_by(notifications.c.at.desc())
        .limit(limit)
    ).all()


def revoke_principal(db: Connection, principal_id: str, *, now: datetime) -> bool:
    """Revoke an active principal and every device of theirs; False if none was active."""
    done = db.execute(
        update(principals)
        .where(principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if done.rowcount != 1:
        return False
    revoke_devices(db, principal_id, now=now)
    return True
