"""Changes to who can read: each function decides (with the pure rules of
keyservice/policy/writes.py), validates, and either makes the change now or says what to
propose to a second person. Routers in keyservice/api/ parse, call one of these, and answer.

A caller without standing gets ``DeniedError`` naming the same 404 whether the child, order
or guardian exists or not; a change that is not valid as asked, ``InvalidChangeError`` (422).
Audit entries are written by the API layer from what these return.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from keyservice.caller import Caller
from keyservice.catalog import grants, proposals
from keyservice.catalog.people import caller_as_person, has_devices, has_read_rights
from keyservice.db.tables import court_orders, devices
from keyservice.errors import DeniedError, InvalidChangeError
from keyservice.policy.writes import Change, ProposalAction, Write, WriteVerdict, may_write

NO_STANDING_CHILD = "no child with this id for which you may record this"
SELF_GRANT = (
    "you cannot record a relationship that gives rights to yourself; "
    "ask another administrator or manager to record it"
)


@dataclass(frozen=True)
class Made:
    """The change took effect: its new row's id (if it made one) and its audit detail."""

    action: str
    result_id: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class Propose:
    """The change waits for a second person: what to store as a proposal."""

    action: ProposalAction
    payload: Mapping[str, Any]
    child_id: str | None
    beneficiary_id: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


Outcome = Made | Propose


def judge(
    db: Connection,
    caller: Caller,
    change: Change,
    *,
    child_id: str | None,
    now: datetime,
    own: bool = False,
    gives_rights: bool = False,
) -> WriteVerdict:
    """``may_write`` for the caller about ``child_id``, with the facts loaded."""
    guardian = (
        child_id is not None
        and caller.kind == "guardian"
        and grants.is_guardian(db, guardian_id=caller.principal_id, child_id=child_id)
    )
    person = caller_as_person(db, caller, child_id=child_id, now=now)
    return may_write(
        Write(change, person, own=own, guardian_of_child=guardian, gives_rights=gives_rights)
    )


def refuse_self_grant(caller: Caller, change: Change, *, subject_id: str) -> None:
    """Whoever records a relationship must not be the one it gives rights to (decision 0004)."""
    if subject_id == caller.principal_id:
        raise DeniedError(
            SELF_GRANT,
            action=change.value,
            detail={"reason": "self_grant", "subject_id": subject_id},
            status=403,
        )


def _no_standing(change: Change, detail: Mapping[str, Any], message: str) -> DeniedError:
    return DeniedError(message, action=change.value, detail={**detail, "reason": "no_standing"})


def propose_assignment(
    db: Connection, caller: Caller, payload: Mapping[str, Any], *, now: datetime
) -> Propose:
    staff_id, child_id = payload["staff_id"], payload["child_id"]
    refuse_self_grant(caller, Change.ASSIGNMENT_CREATE, subject_id=staff_id)
    grants.window(_time(payload.get("valid_from")), _time(payload.get("valid_to")), now=now)
    if grants.kind_of(db, staff_id) != "staff":
        raise InvalidChangeError("staff_id is not an active staff member")
    if not grants.child_exists(db, child_id):
        raise InvalidChangeError("child_id is not a known child")
    return Propose(ProposalAction.ASSIGNMENT_CREATE, payload, child_id, staff_id)


def propose_guardianship(db: Connection, caller: Caller, payload: Mapping[str, Any]) -> Propose:
    guardian_id, child_id = payload["guardian_id"], payload["child_id"]
    refuse_self_grant(caller, Change.GUARDIANSHIP_CREATE, subject_id=guardian_id)
    if grants.kind_of(db, guardian_id) != "guardian":
        raise InvalidChangeError("guardian_id is not an active guardian")
    if not grants.child_exists(db, child_id):
        raise InvalidChangeError("child_id is not a known child")
    return Propose(ProposalAction.GUARDIANSHIP_CREATE, payload, child_id, guardian_id)


def end_guardianship(
    db: Connection, caller: Caller, guardianship_id: str, *, reason: str, now: datetime
) -> Made:
    child_id = grants.current_guardianship_child(db, guardianship_id)
    if (
        child_id is None
        or not judge(db, caller, Change.GUARDIANSHIP_END, child_id=child_id, now=now).allowed
    ):
        raise _no_standing(
            Change.GUARDIANSHIP_END,
            {"guardianship_id": guardianship_id},
            "no current guardianship with this id that you may end",
        )
    grants.end_guardianship(db, guardianship_id, by=caller.principal_id, reason=reason, now=now)
    return Made(
        Change.GUARDIANSHIP_END.value,
        None,
        {"guardianship_id": guardianship_id, "child_id": child_id},
    )


def record_consent(
    db: Connection, caller: Caller, payload: Mapping[str, Any], *, now: datetime
) -> Outcome:
    """A guardian's own consent at once; one the child's manager or DSL holds, a proposal."""
    child_id, given_by = payload["child_id"], payload["given_by"]
    verdict = judge(
        db,
        caller,
        Change.CONSENT_CREATE,
        child_id=child_id,
        now=now,
        own=caller.kind == "guardian",
    )
    if not verdict.allowed:
        raise _no_standing(Change.CONSENT_CREATE, {"child_id": child_id}, NO_STANDING_CHILD)
    refuse_self_grant(caller, Change.CONSENT_CREATE, subject_id=payload["recipient_id"])
    if not verdict.needs_approval and given_by != caller.principal_id:
        raise InvalidChangeError("a guardian records only their own consent")
    categories = sorted(set(payload["categories"]))
    if verdict.needs_approval:
        grants.check_consent(
            db,
            child_id=child_id,
            given_by=given_by,
            recipient_id=payload["recipient_id"],
            replaces=payload.get("replaces"),
        )
        grants.window(_time(payload.get("valid_from")), _time(payload.get("valid_to")), now=now)
        return Propose(ProposalAction.CONSENT_CREATE, payload, child_id, payload["recipient_id"])
    consent_id = grants.add_consent(
        db,
        child_id=child_id,
        given_by=given_by,
        recipient_id=payload["recipient_id"],
        categories=categories,
        purpose=payload["purpose"],
        valid_from=_time(payload.get("valid_from")),
        valid_to=_time(payload.get("valid_to")),
        evidence_record_id=payload.get("evidence_record_id"),
        replaces=payload.get("replaces"),
        by=caller.principal_id,
        now=now,
    )
    detail = {
        "consent_id": consent_id,
        "child_id": child_id,
        "given_by": given_by,
        "recipient_id": payload["recipient_id"],
        "categories": categories,
    }
    return Made(Change.CONSENT_CREATE.value, consent_id, detail)


def withdraw_consent(
    db: Connection, caller: Caller, consent_id: str, *, reason: str | None, now: datetime
) -> Made:
    child_id = grants.current_consent_child(db, consent_id)
    if (
        child_id is None
        or not judge(db, caller, Change.CONSENT_WITHDRAW, child_id=child_id, now=now).allowed
    ):
        raise _no_standing(
            Change.CONSENT_WITHDRAW,
            {"consent_id": consent_id},
            "no current consent with this id that you may withdraw",
        )
    grants.withdraw_consent(db, consent_id, by=caller.principal_id, reason=reason, now=now)
    return Made(
        Change.CONSENT_WITHDRAW.value, None, {"consent_id": consent_id, "child_id": child_id}
    )


def record_court_order(
    db: Connection, caller: Caller, payload: Mapping[str, Any], *, now: datetime
) -> Outcome:
    """Restricting a guardian at once; disclosing, or a correction that keeps a guardian out
    of less than the order it replaces, waits for a second person."""
    child_id, subject_id = payload["child_id"], payload["subject_id"]
    if not judge(db, caller, Change.COURT_ORDER_CREATE, child_id=child_id, now=now).allowed:
        raise _no_standing(Change.COURT_ORDER_CREATE, {"child_id": child_id}, NO_STANDING_CHILD)
    refuse_self_grant(caller, Change.COURT_ORDER_CREATE, subject_id=subject_id)
    effect, replaces = payload["effect"], payload.get("replaces")
    grants.check_court_order(
        db, child_id=child_id, effect=effect, subject_id=subject_id, replaces=replaces
    )
    valid_from, valid_to = _time(payload["valid_from"]), _time(payload["valid_to"])
    assert valid_from is not None and valid_to is not None
    grants.window(valid_from, valid_to, now=now)
    categories = sorted(set(payload["categories"]))
    regains = grants.let_back_in(
        db,
        replaces=replaces,
        effect=effect,
        subject_id=subject_id,
        categories=categories,
        valid_from=valid_from,
        valid_to=valid_to,
        now=now,
    )
    if effect == "disclose" or regains is not None:
        beneficiary = subject_id if effect == "disclose" else regains
        return Propose(ProposalAction.COURT_ORDER_CREATE, payload, child_id, beneficiary)
    court_order_id = grants.add_court_order(
        db,
        child_id=child_id,
        effect=effect,
        subject_id=subject_id,
        categories=categories,
        reference=payload["reference"],
        valid_from=valid_from,
        valid_to=valid_to,
        evidence_record_id=payload.get("evidence_record_id"),
        replaces=replaces,
        by=caller.principal_id,
        now=now,
        guardians_told=payload.get("guardians_told", True),
    )
    detail = {
        "court_order_id": court_order_id,
        "child_id": child_id,
        "effect": effect,
        "subject_id": subject_id,
        "categories": categories,
        "guardians_told": payload.get("guardians_told", True),
    }
    return Made(Change.COURT_ORDER_CREATE.value, court_order_id, detail)


def end_court_order(
    db: Connection, caller: Caller, court_order_id: str, *, reason: str, now: datetime
) -> Outcome:
    """Ended by the child's manager or DSL; ending one that keeps a guardian out gives that
    guardian their rights back, so it waits for a second person."""
    current = grants.current_court_order(db, court_order_id)
    if (
        current is None
        or not judge(db, caller, Change.COURT_ORDER_END, child_id=current[0], now=now).allowed
    ):
        raise _no_standing(
            Change.COURT_ORDER_END, {"court_order_id": court_order_id}, NO_STANDING_CHILD
        )
    child_id, effect = current
    if effect == "restrict_guardian":
        subject = db.execute(
            select(court_orders.c.subject_id).where(court_orders.c.court_order_id == court_order_id)
        ).scalar_one()
        payload = {"court_order_id": court_order_id, "reason": reason}
        return Propose(ProposalAction.COURT_ORDER_END, payload, child_id, subject)
    grants.end_court_order(db, court_order_id, by=caller.principal_id, reason=reason, now=now)
    return Made(
        Change.COURT_ORDER_END.value,
        None,
        {"court_order_id": court_order_id, "child_id": child_id},
    )


def _time(value: Any) -> datetime | None:
    """A time from a proposal payload (JSON: an ISO string) or a parsed body."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def add_person(
    db: Connection, caller: Caller, payload: Mapping[str, Any], *, now: datetime
) -> Outcome:
    """A new person at once; a new admin waits for a second person, who hands over the code."""
    roles = sorted(set(payload["roles"]))
    is_admin = "admin" in roles
    if is_admin and payload["kind"] != "staff":
        raise InvalidChangeError("only staff principals have roles")
    verdict = judge(
        db, caller, Change.PRINCIPAL_CREATE, child_id=None, now=now, gives_rights=is_admin
    )
    if verdict.needs_approval:
        return Propose(ProposalAction.ADMIN_CREATE, payload, None, None)
    principal_id = grants.add_principal(
        db,
        kind=payload["kind"],
        display_name=payload["display_name"],
        roles=roles,
        organisation=payload.get("organisation"),
        now=now,
    )
    detail = {"principal_id": principal_id, "kind": payload["kind"], "roles": roles}
    return Made(Change.PRINCIPAL_CREATE.value, principal_id, detail)


def code_needs_approval(
    db: Connection, caller: Caller, principal_id: str, *, now: datetime
) -> Propose | None:
    """None when an admin may issue ``principal_id`` a first code alone (a new starter: no
    device, nothing to read, nothing proposed for them); otherwise the proposal to make."""
    refuse_self_grant(caller, Change.ENROLMENT_CODE, subject_id=principal_id)
    gives_rights = (
        has_devices(db, principal_id)
        or has_read_rights(db, principal_id, now=now)
        or proposals.waiting_for(db, principal_id, now=now)
    )
    verdict = judge(
        db, caller, Change.ENROLMENT_CODE, child_id=None, now=now, gives_rights=gives_rights
    )
    if not verdict.needs_approval:
        return None
    return Propose(ProposalAction.DEVICE_ENROL, {"principal_id": principal_id}, None, principal_id)


def revoke_device(db: Connection, caller: Caller, device_id: str, *, now: datetime) -> Made:
    """Revoked by its owner or an admin; anyone else is told there is no such device."""
    owner = db.execute(
        select(devices.c.principal_id).where(
            devices.c.device_id == device_id, devices.c.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    if (
        owner is None
        or not judge(
            db,
            caller,
            Change.DEVICE_REVOKE,
            child_id=None,
            now=now,
            own=owner == caller.principal_id,
        ).allowed
    ):
        raise DeniedError(
            "no active device with this id that you may revoke",
            action=Change.DEVICE_REVOKE.value,
            detail={"device_id": device_id},
        )
    db.execute(update(devices).where(devices.c.device_id == device_id).values(revoked_at=now))
    return Made(Change.DEVICE_REVOKE.value, None, {"device_id": device_id, "principal_id": owner})
