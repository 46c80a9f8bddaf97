"""Offboarding a member of staff who leaves (issue 15, part 5): in the caller's transaction,
every current and future assignment ends, every device and the principal are revoked, every
open enrolment code stops working, and proposals that would give the leaver rights are
cancelled. The route writes one audit entry from what this returns.

Only staff are offboarded. A guardian's or an outside recipient's access rests on a legal
basis (parental responsibility, a consent, a court order) that ending an account must not
silently rewrite: such a person is refused here and revoked with the principal revoke, which
ends their access without touching the basis (and their open codes, invitations included, no
longer enrol a revoked person). Nothing the leaver made for others is withdrawn:
shares they created stay (their basis is still judged on every release), and so do records
they wrote.

Refused, changing nothing: an unknown or already revoked person (the same 404 as every
principal route), someone who is not staff, the last active admin, and oneself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from keyservice.caller import Caller
from keyservice.catalog.changes import judge
from keyservice.catalog.people import other_active_admins
from keyservice.catalog.proposals import notify
from keyservice.db.tables import (
    assignments,
    devices,
    enrolment_codes,
    principals,
    proposals,
    room_staff,
    shares,
)
from keyservice.errors import DeniedError
from keyservice.policy.writes import LEAD_ROLES, Change

ACTION = Change.PRINCIPAL_OFFBOARD.value
UNKNOWN = "no active principal with this id"
# Offboarding one of these is announced to every other admin, manager and DSL: an admin may
# take rights away alone, but not unseen (docs/THREAT_MODEL.md).
ANNOUNCED_ROLES = LEAD_ROLES | {"admin"}
NOTIFICATION = "principal.offboarded"
LAST_ADMIN = (
    "this would leave no active admin: add another admin first "
    "(carevault admin principal add --role admin), then offboard this one"
)


@dataclass(frozen=True)
class Offboarding:
    """What offboarding ``principal_id`` ends (or, in a dry run, would end)."""

    principal_id: str
    roles: tuple[str, ...]
    assignments_ended: tuple[str, ...]
    devices_revoked: tuple[str, ...]
    codes_voided: int
    proposals_cancelled: tuple[str, ...]
    # Live shares this person created for others: kept, counted so the admin knows of them.
    shares_kept: int
    announced_to: tuple[str, ...] = field(default=())

    def detail(self) -> dict[str, Any]:
        """The audit entry's detail: ids and counts of what ended (never a code)."""
        return {
            "principal_id": self.principal_id,
            "roles": list(self.roles),
            "assignments_ended": list(self.assignments_ended),
            "devices_revoked": list(self.devices_revoked),
            "codes_voided": self.codes_voided,
            "proposals_cancelled": list(self.proposals_cancelled),
            "shares_kept": self.shares_kept,
            "announced_to": list(self.announced_to),
            "counts": {
                "assignments": len(self.assignments_ended),
                "devices": len(self.devices_revoked),
                "codes": self.codes_voided,
                "proposals": len(self.proposals_cancelled),
            },
        }


def _refused(message: str, principal_id: str, reason: str, status: int) -> DeniedError:
    return DeniedError(
        message,
        action=ACTION,
        detail={"principal_id": principal_id, "reason": reason},
        status=status,
    )


def check(db: Connection, caller: Caller, principal_id: str, *, now: datetime) -> tuple[str, ...]:
    """The leaver's roles, or ``DeniedError`` saying why they may not be offboarded."""
    if not judge(db, caller, Change.PRINCIPAL_OFFBOARD, child_id=None, now=now).allowed:
        raise _refused("this needs the admin role", principal_id, "not_admin", 403)
    row = db.execute(
        select(principals.c.kind, principals.c.roles).where(
            principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        raise _refused(UNKNOWN, principal_id, "unknown", 404)
    if row.kind != "staff":
        raise _refused(
            f"this person is a {row.kind}, not staff: offboarding is for staff who leave. To "
            "close their account, revoke them (carevault admin revoke principal); their "
            "guardianships, consents and shares stay on record but give nothing to a revoked "
            "person",
            principal_id,
            "not_staff",
            409,
        )
    roles = tuple(sorted(row.roles.split()))
    # Checked before "self": a sole admin offboarding themselves hears the weightier reason.
    if "admin" in roles and other_active_admins(db, besides=principal_id) == 0:
        raise _refused(LAST_ADMIN, principal_id, "last_admin", 409)
    if principal_id == caller.principal_id:
        raise _refused(
            "you cannot offboard yourself; ask another admin to do it",
            principal_id,
            "self",
            403,
        )
    return roles


def plan(db: Connection, caller: Caller, principal_id: str, *, now: datetime) -> Offboarding:
    """What offboarding would end, changing nothing; refused as ``check`` says."""
    roles = check(db, caller, principal_id, now=now)
    return Offboarding(
        principal_id=principal_id,
        roles=roles,
        # Their room memberships (keyservice/catalog/rooms.py) end with their assignments.
        assignments_ended=_ids(
            db,
            select(assignments.c.assignment_id).where(
                assignments.c.staff_id == principal_id,
                or_(assignments.c.valid_to.is_(None), assignments.c.valid_to > now),
            ),
        )
        + _ids(
            db,
            select(room_staff.c.membership_id).where(
                room_staff.c.staff_id == principal_id,
                or_(room_staff.c.valid_to.is_(None), room_staff.c.valid_to > now),
            ),
        ),
        devices_revoked=_ids(
            db,
            select(devices.c.device_id).where(
                devices.c.principal_id == principal_id, devices.c.revoked_at.is_(None)
            ),
        ),
        codes_voided=db.execute(
            select(func.count()).select_from(enrolment_codes).where(_open_code(principal_id, now))
        ).scalar_one(),
        proposals_cancelled=_ids(
            db,
            select(proposals.c.proposal_id).where(
                proposals.c.beneficiary_id == principal_id,
                proposals.c.state == "pending",
                proposals.c.expires_at > now,
            ),
        ),
        shares_kept=db.execute(
            select(func.count())
            .select_from(shares)
            .where(
                shares.c.created_by == principal_id,
                or_(shares.c.revoked_at.is_(None), shares.c.revoked_at > now),
                shares.c.valid_to > now,
            )
        ).scalar_one(),
        announced_to=_announced_to(db, caller, principal_id, roles),
    )


def offboard(
    db: Connection, caller: Caller, principal_id: str, *, reason: str, now: datetime
) -> Offboarding:
    """End everything ``plan`` lists, in the caller's transaction, and tell whoever must know."""
    done = plan(db, caller, principal_id, now=now)
    revoked = db.execute(
        update(principals)
        .where(principals.c.principal_id == principal_id, principals.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if revoked.rowcount != 1:  # offboarded or revoked by someone else meanwhile
        raise _refused(UNKNOWN, principal_id, "unknown", 404)
    if done.assignments_ended:
        db.execute(
            update(assignments)
            .where(assignments.c.assignment_id.in_(done.assignments_ended))
            .values(valid_to=now)
        )
        db.execute(
            update(room_staff)
            .where(room_staff.c.membership_id.in_(done.assignments_ended))
            .values(valid_to=now)
        )
    db.execute(
        update(devices)
        .where(devices.c.principal_id == principal_id, devices.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    # Voided the way the host's enrolment-code command voids them: expired now.
    db.execute(update(enrolment_codes).where(_open_code(principal_id, now)).values(expires_at=now))
    if done.proposals_cancelled:
        db.execute(
            update(proposals)
            .where(
                proposals.c.proposal_id.in_(done.proposals_cancelled),
                proposals.c.state == "pending",
            )
            .values(
                state="cancelled",
                decided_by=caller.principal_id,
                decided_device=caller.device_id,
                decided_at=now,
                reason="offboarded",
            )
        )
    for recipient in done.announced_to:
        notify(
            db,
            principal_id=recipient,
            kind=NOTIFICATION,
            detail={
                "principal_id": principal_id,
                "roles": list(done.roles),
                "by": caller.principal_id,
                "reason": reason,
            },
            now=now,
        )
    return done


def must_leave_an_admin(db: Connection, principal_id: str) -> None:
    """Refuse if no active admin remains, as the transaction sees it now: called after the
    audit's chain-head lock, so two admins offboarding each other at once cannot both win."""
    if other_active_admins(db, besides=principal_id) == 0:
        raise _refused(LAST_ADMIN, principal_id, "last_admin", 409)


def _open_code(principal_id: str, now: datetime) -> Any:
    return (
        (enrolment_codes.c.principal_id == principal_id)
        & enrolment_codes.c.used_at.is_(None)
        & (enrolment_codes.c.expires_at > now)
    )


def _ids(db: Connection, query: Any) -> tuple[str, ...]:
    return tuple(sorted(str(value) for value in db.execute(query).scalars()))


def _announced_to(
    db: Connection, caller: Caller, principal_id: str, roles: tuple[str, ...]
) -> tuple[str, ...]:
    if not set(roles) & ANNOUNCED_ROLES:
        return ()
    rows = db.execute(
        select(principals.c.principal_id, principals.c.roles).where(
            principals.c.kind == "staff",
            principals.c.revoked_at.is_(None),
            principals.c.principal_id.not_in([principal_id, caller.principal_id]),
        )
    ).all()
    return tuple(
        sorted(row.principal_id for row in rows if set(row.roles.split()) & ANNOUNCED_ROLES)
    )
