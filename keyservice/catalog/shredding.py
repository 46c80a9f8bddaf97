"""Crypto-shredding a record or a whole child, and legal holds (issue 15, part 6;
docs/decisions/0019-retention-and-shredding.md).

A shred goes pending -> approved -> done, or to cancelled on the way:

- **requested** by a manager or DSL of every child concerned (never an admin alone: admins
  cannot read, and must not destroy alone either);
- **approved** by a second such person, not the requester nor anyone who might act as them;
  the waiting period (``CAREVAULT_SHRED_WAIT_DAYS``, 30 by default) starts then;
- **cancelled** by a lead of the children at any time before it is carried out;
- **carried out** once the wait is over, by the service's timer or the next request that
  touches it: the record keys' wrapped rows are deleted (for a whole child also the child's
  key versions destroyed: state destroyed, wrapped bytes erased), the versions marked
  deleted, a certificate signed, all in one transaction; the blobs are deleted after it
  commits (and again by every sweep until they are gone).

Refused while a legal hold is on any child concerned or a live share lists what would go; a
hold set, or a share made, during the wait stops the shred when it falls due (it is
cancelled, audited, and has to be asked for again). Every refusal is a ``DeniedError``: the
API audits it and changes nothing.

A record of several children shredded whole with one of them keeps the other children's
wraps and its blob: their own retention governs it (decision 0002: destroying one child's
key does not take the others' access).
"""

from __future__ import annotations

import contextlib
import logging
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from keyservice.audit.record import audit
from keyservice.caller import Caller
from keyservice.catalog.child_keys import DESTROYED
from keyservice.catalog.context import RecordContext
from keyservice.catalog.people import caller_as_person, circle_of
from keyservice.db.tables import (
    DELETED,
    child_keys,
    children,
    legal_holds,
    record_children,
    record_versions,
    records,
    share_items,
    shares,
    shred_requests,
    wrapped_record_keys,
)
from keyservice.errors import DeniedError
from keyservice.ids import new_id
from keyservice.policy.writes import Change, Person, may_approve_shred
from vault.shred import certificate_statement, sign_certificate
from vault.storage import ObjectNotFound, StorageError

log = logging.getLogger("keyservice.shredding")

PENDING, APPROVED, CANCELLED, DONE = "pending", "approved", "cancelled", "done"
UNKNOWN_RECORD = "no record with this id that you may shred"
UNKNOWN_SHRED = "no shred request with this id that you may act on"
UNKNOWN_HOLD = "no legal hold with this id that you may lift"


@dataclass(frozen=True)
class Shred:
    shred_id: str
    target: str
    record_id: str | None
    child_id: str | None
    child_ids: tuple[str, ...]
    reason: str
    requested_by: str
    requested_at: datetime
    state: str
    approved_by: str | None
    approved_at: datetime | None
    not_before: datetime | None
    cancelled_by: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    done_at: datetime | None

    def detail(self) -> dict[str, Any]:
        """Ids for an audit entry (the reason is the requester's words: kept too)."""
        return {
            "shred_id": self.shred_id,
            "target": self.target,
            "record_id": self.record_id,
            "child_id": self.child_id,
            "child_ids": list(self.child_ids),
        }


@dataclass(frozen=True)
class Certificate:
    statement: bytes
    signature: bytes


@dataclass
class Destroyed:
    """What carrying out a shred destroyed, and the objects left to delete from the store."""

    shred: Shred
    records_shredded: list[str] = field(default_factory=list)
    wraps_destroyed: int = 0
    child_key_versions: list[int] = field(default_factory=list)
    objects: list[tuple[str, str | None]] = field(default_factory=list)
    certificate: Certificate | None = None

    def detail(self) -> dict[str, Any]:
        return {
            **self.shred.detail(),
            "records_shredded": len(self.records_shredded),
            "wraps_destroyed": self.wraps_destroyed,
            "child_key_versions_destroyed": self.child_key_versions,
            "objects": len(self.objects),
        }


@dataclass(frozen=True)
class Plan:
    """What a shred would destroy now (for --dry-run and the request's answer)."""

    child_ids: tuple[str, ...]
    records: int
    versions: int


def _denied(
    change: Change, message: str, detail: dict[str, Any], reason: str, status: int
) -> DeniedError:
    return DeniedError(
        message, action=change.value, detail={**detail, "reason": reason}, status=status
    )


# --- legal holds --------------------------------------------------------------------------


def set_hold(db: Connection, caller: Caller, child_id: str, *, reason: str, now: datetime) -> str:
    detail = {"child_id": child_id}
    _lead_of_all(db, caller, Change.LEGAL_HOLD_SET, (child_id,), detail, now=now, status=403)
    hold_id = new_id()
    db.execute(
        insert(legal_holds).values(
            hold_id=hold_id,
            child_id=child_id,
            reason=reason,
            set_by=caller.principal_id,
            set_at=now,
        )
    )
    return hold_id


def lift_hold(db: Connection, caller: Caller, hold_id: str, *, reason: str, now: datetime) -> str:
    """Lift the hold; returns its child's id."""
    detail = {"hold_id": hold_id}
    row = db.execute(
        select(legal_holds.c.child_id).where(
            legal_holds.c.hold_id == hold_id, legal_holds.c.lifted_at.is_(None)
        )
    ).first()
    if row is None:
        raise _denied(Change.LEGAL_HOLD_LIFT, UNKNOWN_HOLD, detail, "unknown", 404)
    _lead_of_all(
        db,
        caller,
        Change.LEGAL_HOLD_LIFT,
        (row.child_id,),
        detail,
        now=now,
        status=404,
        message=UNKNOWN_HOLD,
    )
    db.execute(
        update(legal_holds)
        .where(legal_holds.c.hold_id == hold_id)
        .values(lifted_by=caller.principal_id, lifted_at=now, lift_reason=reason)
    )
    return str(row.child_id)


def holds_of(db: Connection, child_ids: tuple[str, ...]) -> list[str]:
    return sorted(
        db.execute(
            select(legal_holds.c.hold_id).where(
                legal_holds.c.child_id.in_(child_ids), legal_holds.c.lifted_at.is_(None)
            )
        ).scalars()
    )


# --- requests, approvals, cancellations ---------------------------------------------------


def request(
    db: Connection,
    caller: Caller,
    *,
    record_id: str | None,
    child_id: str | None,
    reason: str,
    now: datetime,
) -> tuple[Shred, Plan]:
    """Store a pending shred request of a record or a whole child; refused as the module says."""
    change = Change.SHRED_REQUEST
    if (record_id is None) == (child_id is None):
        raise _denied(change, "name one record or one child, not both", {}, "bad_target", 422)
    detail = {"record_id": record_id} if record_id else {"child_id": child_id}
    if record_id is not None:
        child_ids = _record_children(db, record_id)
        if not child_ids:
            raise _denied(change, UNKNOWN_RECORD, detail, "unknown", 404)
        _lead_of_all(
            db, caller, change, child_ids, detail, now=now, status=404, message=UNKNOWN_RECORD
        )
    else:
        assert child_id is not None
        if (
            db.execute(select(children.c.child_id).where(children.c.child_id == child_id)).first()
            is None
        ):
            raise _denied(change, "no child with this id", detail, "unknown", 404)
        child_ids = (child_id,)
        _lead_of_all(db, caller, change, child_ids, detail, now=now, status=403)
        if not _live_versions(db, child_id):
            raise _denied(
                change, "this child has already been shredded", detail, "already_shredded", 409
            )
    _not_blocked(
        db, change, child_ids, record_id=record_id, child_id=child_id, detail=detail, now=now
    )
    already = db.execute(
        select(shred_requests.c.shred_id).where(
            shred_requests.c.state.in_((PENDING, APPROVED)),
            (shred_requests.c.record_id == record_id)
            if record_id
            else (shred_requests.c.child_id == child_id),
        )
    ).first()
    if already is not None:
        raise _denied(
            change,
            f"a shred of this is already open ({already.shred_id}): approve or cancel that one",
            {**detail, "open": already.shred_id},
            "already_requested",
            409,
        )
    shred_id = new_id()
    db.execute(
        insert(shred_requests).values(
            shred_id=shred_id,
            target="record" if record_id else "child",
            record_id=record_id,
            child_id=child_id,
            child_ids=" ".join(child_ids),
            reason=reason,
            requested_by=caller.principal_id,
            requested_device=caller.device_id,
            requested_at=now,
            state=PENDING,
        )
    )
    found = load(db, shred_id)
    assert found is not None
    return found, plan(db, found)


def approve(
    db: Connection, caller: Caller, shred_id: str, *, wait: timedelta, now: datetime
) -> Shred:
    change = Change.SHRED_APPROVE
    found = _visible(db, caller, change, shred_id, now=now)
    detail = found.detail()
    if found.state != PENDING:
        raise _denied(
            change,
            f"this shred is {found.state}, not waiting for approval",
            detail,
            found.state,
            409,
        )
    requester = _person(db, found.requested_by, now=now)
    approver = caller_as_person(db, caller, child_id=None, now=now)
    verdict = may_approve_shred(requester, approver)
    if not verdict.allowed:
        message = (
            "you asked for this shred: a second manager or DSL of the child must approve it"
            if verdict.reason == "own_request"
            else "you cannot approve this shred: someone independent of the requester must"
        )
        raise _denied(change, message, detail, verdict.reason, 403)
    _not_blocked(
        db,
        change,
        found.child_ids,
        record_id=found.record_id,
        child_id=found.child_id,
        detail=detail,
        now=now,
    )
    done = db.execute(
        update(shred_requests)
        .where(shred_requests.c.shred_id == shred_id, shred_requests.c.state == PENDING)
        .values(
            state=APPROVED,
            approved_by=caller.principal_id,
            approved_device=caller.device_id,
            approved_at=now,
            not_before=now + wait,
        )
    )
    if done.rowcount != 1:
        raise _denied(change, "this shred changed meanwhile: list it again", detail, "raced", 409)
    approved = load(db, shred_id)
    assert approved is not None
    return approved


def cancel(db: Connection, caller: Caller, shred_id: str, *, reason: str, now: datetime) -> Shred:
    change = Change.SHRED_CANCEL
    found = _visible(db, caller, change, shred_id, now=now)
    detail = found.detail()
    if found.state not in (PENDING, APPROVED):
        raise _denied(
            change, f"this shred is {found.state}: nothing to cancel", detail, found.state, 409
        )
    done = db.execute(
        update(shred_requests)
        .where(
            shred_requests.c.shred_id == shred_id, shred_requests.c.state.in_((PENDING, APPROVED))
        )
        .values(
            state=CANCELLED,
            cancelled_by=caller.principal_id,
            cancelled_at=now,
            cancel_reason=reason,
        )
    )
    if done.rowcount != 1:
        raise _denied(change, "this shred changed meanwhile: list it again", detail, "raced", 409)
    cancelled = load(db, shred_id)
    assert cancelled is not None
    return cancelled


def show(db: Connection, caller: Caller, shred_id: str, *, now: datetime) -> Shred:
    return _visible(
        db, caller, Change.SHRED_APPROVE, shred_id, now=now, action="shred.show", admin_reads=True
    )


def certificate_of(db: Connection, caller: Caller, shred_id: str, *, now: datetime) -> Certificate:
    found = _visible(
        db,
        caller,
        Change.SHRED_APPROVE,
        shred_id,
        now=now,
        action="shred.certificate",
        admin_reads=True,
    )
    row = db.execute(
        select(shred_requests.c.certificate, shred_requests.c.signature).where(
            shred_requests.c.shred_id == shred_id
        )
    ).one()
    if found.state != DONE or row.certificate is None:
        raise _denied(
            Change.SHRED_APPROVE,
            f"this shred is {found.state}: a certificate exists once it is carried out",
            found.detail(),
            "no_certificate",
            409,
        )
    return Certificate(row.certificate.encode("ascii"), bytes(row.signature))


def visible_to(db: Connection, caller: Caller, *, now: datetime) -> list[Shred]:
    """The shreds the caller is a lead of every child of (an admin: every one, to follow
    them; not to act on them), newest first."""
    rows = db.execute(
        select(shred_requests.c.shred_id).order_by(shred_requests.c.requested_at.desc())
    ).scalars()
    found = []
    for shred_id in list(rows):
        shred = load(db, shred_id)
        assert shred is not None
        if "admin" in caller.roles or _is_lead_of_all(db, caller, shred.child_ids, now=now):
            found.append(shred)
    return found


def plan(db: Connection, shred: Shred) -> Plan:
    """What carrying out ``shred`` would destroy, counted."""
    record_ids = _records_going(db, shred)
    versions = 0
    if record_ids:
        versions = db.execute(
            select(func.count())
            .select_from(record_versions)
            .where(record_versions.c.record_id.in_(record_ids))
        ).scalar_one()
    return Plan(shred.child_ids, len(record_ids), versions)


# --- carrying out -------------------------------------------------------------------------


def due_ids(db: Connection, *, now: datetime) -> list[str]:
    return list(
        db.execute(
            select(shred_requests.c.shred_id)
            .where(shred_requests.c.state == APPROVED, shred_requests.c.not_before <= now)
            .order_by(shred_requests.c.not_before)
        ).scalars()
    )


def run_due(engine: Engine, state: RecordContext) -> int:
    """Carry out every shred whose wait is over, each in its own transaction; then delete its
    blobs. Returns how many were carried out. Safe on several instances at once: a shred is
    claimed with one conditional UPDATE."""
    with engine.connect() as db:
        wanted = due_ids(db, now=state.clock())
        db.rollback()
    carried = 0
    for shred_id in wanted:
        with engine.connect() as db:
            destroyed = carry_out(db, state, shred_id)
            db.commit()
        if destroyed is not None and destroyed.certificate is not None:
            carried += 1
            delete_objects(state, destroyed.objects)
    return carried


def carry_out(db: Connection, state: RecordContext, shred_id: str) -> Destroyed | None:
    """Destroy what ``shred_id`` names, in the caller's transaction, with its audit entry;
    None if someone else claimed it first. A hold or a live share found now cancels it."""
    now = state.clock()
    claimed = db.execute(
        update(shred_requests)
        .where(
            shred_requests.c.shred_id == shred_id,
            shred_requests.c.state == APPROVED,
            shred_requests.c.not_before <= now,
        )
        .values(state=DONE, done_at=now)
    )
    if claimed.rowcount != 1:
        return None
    shred = load(db, shred_id)
    assert shred is not None
    blocked = _blocker(
        db, shred.child_ids, record_id=shred.record_id, child_id=shred.child_id, now=now
    )
    if blocked is not None:
        db.execute(
            update(shred_requests)
            .where(shred_requests.c.shred_id == shred_id)
            .values(state=CANCELLED, done_at=None, cancelled_at=now, cancel_reason=blocked)
        )
        audit(
            db, state, None, "shred.blocked", {**shred.detail(), "reason": blocked}, outcome="deny"
        )
        return Destroyed(shred)
    destroyed = Destroyed(shred)
    record_ids = _records_going(db, shred)
    if record_ids:
        destroyed.objects = [
            (row.object_name, row.upload_id)
            for row in db.execute(
                select(record_versions.c.object_name, record_versions.c.upload_id).where(
                    record_versions.c.record_id.in_(record_ids)
                )
            )
        ]
        destroyed.wraps_destroyed += db.execute(
            delete(wrapped_record_keys).where(wrapped_record_keys.c.record_id.in_(record_ids))
        ).rowcount
        db.execute(
            update(record_versions)
            .where(record_versions.c.record_id.in_(record_ids))
            .values(state=DELETED, encrypted_metadata=None)
        )
        db.execute(
            update(records)
            .where(records.c.record_id.in_(record_ids), records.c.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        destroyed.records_shredded = sorted(record_ids)
    if shred.child_id is not None:
        # The child's wraps of records other children share: gone with the child's key.
        destroyed.wraps_destroyed += db.execute(
            delete(wrapped_record_keys).where(wrapped_record_keys.c.child_id == shred.child_id)
        ).rowcount
        destroyed.child_key_versions = _live_versions(db, shred.child_id)
        db.execute(
            update(child_keys)
            .where(child_keys.c.child_id == shred.child_id)
            .values(state=DESTROYED, wrapped=None)
        )
        # The child's own personal data goes too; the row stays for the ids that name it.
        db.execute(
            update(children)
            .where(children.c.child_id == shred.child_id)
            .values(display_name="(shredded)", room=None, date_of_birth=None, left_on=None)
        )
        state.child_keys.forget(shred.child_id)
    destroyed.certificate = _certify(state, shred, destroyed, now=now)
    db.execute(
        update(shred_requests)
        .where(shred_requests.c.shred_id == shred_id)
        .values(
            certificate=destroyed.certificate.statement.decode("ascii"),
            signature=destroyed.certificate.signature,
        )
    )
    audit(db, state, None, "shred.done", destroyed.detail())
    return destroyed


def delete_objects(state: RecordContext, objects: list[tuple[str, str | None]]) -> None:
    """Delete shredded versions' blobs; what fails is left to the sweep (deleted versions'
    objects are deleted again by every sweep)."""
    for name, upload_id in objects:
        try:
            if upload_id is not None:
                with contextlib.suppress(ObjectNotFound):
                    state.blobs.abort_multipart(name, upload_id=upload_id)
            state.blobs.delete(name)
        except (StorageError, OSError):
            log.warning("could not delete a shredded blob; the sweep will try again")


def _certify(
    state: RecordContext, shred: Shred, destroyed: Destroyed, *, now: datetime
) -> Certificate:
    assert shred.approved_by is not None and shred.approved_at is not None
    statement = certificate_statement(
        {
            "shred_id": shred.shred_id,
            "target": shred.target,
            "record_id": shred.record_id,
            "child_id": shred.child_id,
            "child_ids": list(shred.child_ids),
            "records_shredded": destroyed.records_shredded,
            "child_key_versions_destroyed": destroyed.child_key_versions,
            "wraps_destroyed": destroyed.wraps_destroyed,
            "objects_deleted": len(destroyed.objects),
            "reason": shred.reason,
            "requested_by": shred.requested_by,
            "requested_at": shred.requested_at.isoformat(),
            "approved_by": shred.approved_by,
            "approved_at": shred.approved_at.isoformat(),
            "shredded_at": now.isoformat(),
        }
    )
    return Certificate(statement, sign_certificate(state.audit_key, statement))


def service_public_key(state: RecordContext) -> str:
    """The service's signing key, as the API writes binary (base64url, no padding)."""
    raw = state.audit_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# --- helpers ------------------------------------------------------------------------------


def load(db: Connection, shred_id: str) -> Shred | None:
    row = db.execute(select(shred_requests).where(shred_requests.c.shred_id == shred_id)).first()
    if row is None:
        return None
    return Shred(
        shred_id=row.shred_id,
        target=row.target,
        record_id=row.record_id,
        child_id=row.child_id,
        child_ids=tuple(row.child_ids.split()),
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        state=row.state,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        not_before=row.not_before,
        cancelled_by=row.cancelled_by,
        cancelled_at=row.cancelled_at,
        cancel_reason=row.cancel_reason,
        done_at=row.done_at,
    )


def _visible(
    db: Connection,
    caller: Caller,
    change: Change,
    shred_id: str,
    *,
    now: datetime,
    action: str | None = None,
    admin_reads: bool = False,
) -> Shred:
    """The shred, if the caller is a lead of every child of it (or, ``admin_reads``, an
    admin); an admin who is not is told why; anyone else gets the same 404 as for no shred."""
    found = load(db, shred_id)
    if admin_reads and found is not None and "admin" in caller.roles:
        return found
    if (
        found is not None
        and "admin" in caller.roles
        and not _is_lead_of_all(db, caller, found.child_ids, now=now)
    ):
        raise DeniedError(
            "an admin alone cannot approve or cancel a shred: a manager or DSL of the "
            "child must (admins cannot read records, and do not destroy them alone)",
            action=action or change.value,
            detail={**found.detail(), "reason": "admin_alone"},
            status=403,
        )
    if found is None or not _is_lead_of_all(db, caller, found.child_ids, now=now):
        raise DeniedError(
            UNKNOWN_SHRED,
            action=action or change.value,
            detail={"shred_id": shred_id, "reason": "unknown"},
            status=404,
        )
    return found


def _is_lead_of_all(
    db: Connection, caller: Caller, child_ids: tuple[str, ...], *, now: datetime
) -> bool:
    return all(
        caller_as_person(db, caller, child_id=c, now=now).is_lead_of_child for c in child_ids
    )


def _lead_of_all(
    db: Connection,
    caller: Caller,
    change: Change,
    child_ids: tuple[str, ...],
    detail: dict[str, Any],
    *,
    now: datetime,
    status: int,
    message: str | None = None,
) -> None:
    if not _is_lead_of_all(db, caller, child_ids, now=now):
        reason = "admin_alone" if "admin" in caller.roles else "no_standing"
        raise _denied(
            change,
            message
            or "only a manager or DSL assigned to the child may do this (an admin alone may not)",
            detail,
            reason,
            status,
        )


def _person(db: Connection, principal_id: str, *, now: datetime) -> Person:
    return Person(principal_id, "staff", frozenset(), circle_of(db, principal_id, now=now))


def _record_children(db: Connection, record_id: str) -> tuple[str, ...]:
    return tuple(
        db.execute(
            select(record_children.c.child_id)
            .join(records, records.c.record_id == record_children.c.record_id)
            .where(record_children.c.record_id == record_id, records.c.deleted_at.is_(None))
            .order_by(record_children.c.child_id)
        ).scalars()
    )


def _live_versions(db: Connection, child_id: str) -> list[int]:
    return sorted(
        db.execute(
            select(child_keys.c.version).where(
                child_keys.c.child_id == child_id, child_keys.c.state != DESTROYED
            )
        ).scalars()
    )


def _records_going(db: Connection, shred: Shred) -> list[str]:
    """The records the shred deletes whole: the record, or every record of the child whose
    other children, if any, are all shredded already. A group record stays while one of its
    children lives, and goes with the last of them: counting the children shredded earlier
    as if they lived left the record's row and blob behind with no wrap to open it. While a
    shred is carried out its own row is ``done`` already: the child itself is among the
    shredded."""
    if shred.record_id is not None:
        return list(_record_children(db, shred.record_id) and [shred.record_id])
    shredded = select(shred_requests.c.child_id).where(
        shred_requests.c.state == DONE, shred_requests.c.child_id.is_not(None)
    )
    others = (
        select(record_children.c.record_id)
        .where(
            record_children.c.child_id != shred.child_id,
            record_children.c.child_id.not_in(shredded),
        )
        .scalar_subquery()
    )
    return sorted(
        db.execute(
            select(record_children.c.record_id)
            .join(records, records.c.record_id == record_children.c.record_id)
            .where(
                record_children.c.child_id == shred.child_id,
                records.c.deleted_at.is_(None),
                record_children.c.record_id.not_in(others),
            )
        ).scalars()
    )


def _blocker(
    db: Connection,
    child_ids: tuple[str, ...],
    *,
    record_id: str | None,
    child_id: str | None,
    now: datetime,
) -> str | None:
    """``legal_hold`` or ``live_share`` if either stops the shred now, else None."""
    if holds_of(db, child_ids):
        return "legal_hold"
    if child_id is not None:
        listed = select(record_children.c.record_id).where(record_children.c.child_id == child_id)
    else:
        listed = select(records.c.record_id).where(records.c.record_id == record_id)
    live = db.execute(
        select(shares.c.share_id)
        .join(share_items, share_items.c.share_id == shares.c.share_id)
        .where(
            share_items.c.record_id.in_(listed),
            or_(shares.c.revoked_at.is_(None), shares.c.revoked_at > now),
            shares.c.valid_to > now,
        )
        .limit(1)
    ).first()
    return "live_share" if live is not None else None


def _not_blocked(
    db: Connection,
    change: Change,
    child_ids: tuple[str, ...],
    *,
    record_id: str | None,
    child_id: str | None,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    blocked = _blocker(db, child_ids, record_id=record_id, child_id=child_id, now=now)
    if blocked == "legal_hold":
        raise _denied(
            change,
            "a legal hold is on this child: nothing of theirs is shredded until it is lifted "
            "(carevault admin hold lift HOLD)",
            detail,
            blocked,
            409,
        )
    if blocked == "live_share":
        raise _denied(
            change,
            "a live share lists this: revoke the share first (carevault shares revoke SHARE), "
            "or wait until it has ended",
            detail,
            blocked,
            409,
        )
