"""Proposals: changes that give read rights, stored until a second person decides them.

A proposal keeps the request that made it; approving applies it through the same checks as
a direct change (keyservice/catalog/grants.py), against the world at approval time. A
proposal nobody decided within ``PROPOSAL_VALIDITY`` can no longer be approved.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from keyservice.audit.chain import canonical_json
from keyservice.catalog import grants, imports
from keyservice.catalog.people import circle_of, has_devices, other_active_admins, person
from keyservice.db.tables import notifications, proposals
from keyservice.enrolment import issue_code
from keyservice.errors import InvalidChangeError
from keyservice.ids import new_id
from keyservice.keys import RootKeyProvider
from keyservice.policy.writes import Proposal, ProposalAction

PROPOSAL_VALIDITY = timedelta(days=14)


@dataclass(frozen=True)
class StoredProposal:
    proposal_id: str
    action: ProposalAction
    child_id: str | None
    beneficiary_id: str | None
    payload: dict[str, Any]
    proposed_by: str
    proposed_device: str | None
    proposed_at: datetime
    expires_at: datetime
    state: str
    decided_by: str | None
    decided_device: str | None
    decided_at: datetime | None
    result_id: str | None
    reason: str | None

    def state_at(self, now: datetime) -> str:
        """``expired`` for a pending proposal past its time; the stored state otherwise."""
        if self.state == "pending" and self.expires_at <= now:
            return "expired"
        return self.state


@dataclass(frozen=True)
class Applied:
    """What approving made: the new row's id, and a code for the approver to hand over."""

    result_id: str | None
    code: str | None = None
    code_expires_at: datetime | None = None
    # An import that created staff: each one's first code, for the approver to hand over.
    codes: tuple[imports.IssuedCode, ...] = ()


# The audit action of the change itself, written beside ``proposal.approve`` so that whoever
# reads the audit for, say, ``consent.create`` finds approved consents too.
CHANGE_ACTIONS = {
    ProposalAction.ASSIGNMENT_CREATE: "assignment.create",
    ProposalAction.GUARDIANSHIP_CREATE: "guardianship.create",
    ProposalAction.CONSENT_CREATE: "consent.create",
    ProposalAction.COURT_ORDER_CREATE: "court_order.create",
    ProposalAction.COURT_ORDER_END: "court_order.end",
    ProposalAction.ADMIN_CREATE: "principal.create",
    ProposalAction.DEVICE_ENROL: "enrolment_code.issue",
    ProposalAction.ROOMS_IMPORT: "rooms.import",
}


def change_detail(stored: StoredProposal, applied: Applied) -> dict[str, Any]:
    """The audit detail of an approved change: opaque ids only, never a purpose or reference
    (and, for a court order, whether the child's guardians are told of shares under it)."""
    detail: dict[str, Any] = {
        "proposal_id": stored.proposal_id,
        "result_id": applied.result_id,
        "child_id": stored.child_id,
        "beneficiary_id": stored.beneficiary_id,
        "proposed_by": stored.proposed_by,
    }
    if stored.action is ProposalAction.COURT_ORDER_CREATE:
        detail["guardians_told"] = stored.payload.get("guardians_told", True)
    if stored.action is ProposalAction.ROOMS_IMPORT:
        detail["kind"] = stored.payload["kind"]
        detail["counts"] = stored.payload["counts"]
        detail["beneficiaries"] = stored.payload["beneficiaries"]
    return detail


def propose(
    db: Connection,
    *,
    action: ProposalAction,
    payload: Mapping[str, Any],
    child_id: str | None,
    beneficiary_id: str | None,
    proposed_by: str,
    proposed_device: str,
    now: datetime,
) -> StoredProposal:
    proposal_id = new_id()
    values: dict[str, Any] = {
        "proposal_id": proposal_id,
        "action": action.value,
        "child_id": child_id,
        "beneficiary_id": beneficiary_id,
        "payload": canonical_json(dict(payload)),
        "proposed_by": proposed_by,
        "proposed_device": proposed_device,
        "proposed_at": now,
        "expires_at": now + PROPOSAL_VALIDITY,
        "state": "pending",
    }
    db.execute(insert(proposals).values(**values))
    loaded = load(db, proposal_id)
    assert loaded is not None
    return loaded


def _stored(row: Any) -> StoredProposal:
    return StoredProposal(
        proposal_id=row.proposal_id,
        action=ProposalAction(row.action),
        child_id=row.child_id,
        beneficiary_id=row.beneficiary_id,
        payload=json.loads(row.payload),
        proposed_by=row.proposed_by,
        proposed_device=row.proposed_device,
        proposed_at=row.proposed_at,
        expires_at=row.expires_at,
        state=row.state,
        decided_by=row.decided_by,
        decided_device=row.decided_device,
        decided_at=row.decided_at,
        result_id=row.result_id,
        reason=row.reason,
    )


def load(db: Connection, proposal_id: str) -> StoredProposal | None:
    row = db.execute(select(proposals).where(proposals.c.proposal_id == proposal_id)).first()
    return None if row is None else _stored(row)


def pending(db: Connection, *, now: datetime, limit: int = 500) -> list[StoredProposal]:
    rows = db.execute(
        select(proposals)
        .where(proposals.c.state == "pending", proposals.c.expires_at > now)
        .order_by(proposals.c.proposed_at)
        .limit(limit)
    )
    return [_stored(row) for row in rows]


def waiting_for(db: Connection, principal_id: str, *, now: datetime) -> bool:
    """Whether a pending proposal would give the principal something (rights, a code)."""
    found = db.execute(
        select(proposals.c.proposal_id)
        .where(
            proposals.c.beneficiary_id == principal_id,
            proposals.c.state == "pending",
            proposals.c.expires_at > now,
        )
        .limit(1)
    ).first()
    return found is not None


def vouched_for(db: Connection, stored: StoredProposal, *, now: datetime) -> list[str]:
    """Everyone besides the beneficiary who saw a code of theirs (sorted): who an approver
    must know is not standing in for them."""
    beneficiary = stored.beneficiary_id
    if beneficiary is None:
        return []
    return sorted(circle_of(db, beneficiary, now=now) - {beneficiary})


def proposed_by(db: Connection, principal_id: str, *, limit: int = 200) -> list[StoredProposal]:
    rows = db.execute(
        select(proposals)
        .where(proposals.c.proposed_by == principal_id)
        .order_by(proposals.c.proposed_at.desc())
        .limit(limit)
    )
    return [_stored(row) for row in rows]


def facts(db: Connection, stored: StoredProposal, *, now: datetime) -> Proposal | None:
    """The write policy's view of a proposal; None when its proposer is no longer active."""
    proposer = person(db, stored.proposed_by, child_id=stored.child_id, now=now)
    if proposer is None:
        return None
    beneficiary = stored.beneficiary_id
    # A batch gives rights to everyone it lists: the approver must be independent of each.
    gaining: list[str] = [beneficiary] if beneficiary else []
    if stored.action is ProposalAction.ROOMS_IMPORT:
        gaining = list(stored.payload["beneficiaries"])
    return Proposal(
        action=stored.action,
        proposer=proposer,
        beneficiary_id=beneficiary,
        beneficiary_circle=frozenset().union(*(circle_of(db, p, now=now) for p in gaining)),
        other_admins=other_active_admins(db, besides=stored.proposed_by),
    )


def decide(
    db: Connection,
    stored: StoredProposal,
    *,
    state: str,
    by: str | None,
    device: str | None,
    reason: str | None,
    result_id: str | None,
    now: datetime,
) -> bool:
    """Move a pending proposal to ``state``; False if someone else decided it first."""
    done = db.execute(
        update(proposals)
        .where(proposals.c.proposal_id == stored.proposal_id, proposals.c.state == "pending")
        .values(
            state=state,
            decided_by=by,
            decided_device=device,
            decided_at=now,
            reason=reason,
            result_id=result_id,
        )
    )
    return done.rowcount == 1


def notify(
    db: Connection, *, principal_id: str, kind: str, detail: Mapping[str, Any], now: datetime
) -> None:
    db.execute(
        insert(notifications).values(
            notification_id=new_id(),
            principal_id=principal_id,
            at=now,
            kind=kind,
            detail=canonical_json(dict(detail)),
        )
    )


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def apply(
    db: Connection,
    stored: StoredProposal,
    *,
    approver_id: str | None,
    approver_device: str | None,
    now: datetime,
    root: RootKeyProvider | None = None,
) -> Applied:
    """Make the proposed change now, checked against the world as it is. The approver is
    None when the approval was given at the host. ``root``: for an import that creates
    children (their first key versions)."""
    if stored.action is ProposalAction.ROOMS_IMPORT:
        return _rooms_import(db, stored, approver_id, approver_device, now, root)
    return _APPLY[stored.action](db, stored, approver_id, approver_device, now)


def _assignment(
    db: Connection, stored: StoredProposal, approver: str | None, device: str | None, now: datetime
) -> Applied:
    p = stored.payload
    return Applied(
        grants.add_assignment(
            db,
            staff_id=p["staff_id"],
            child_id=p["child_id"],
            role=p["role"],
            valid_from=_time(p.get("valid_from")),
            valid_to=_time(p.get("valid_to")),
            now=now,
        )
    )


def _guardianship(
    db: Connection, stored: StoredProposal, approver: str | None, device: str | None, now: datetime
) -> Applied:
    p = stored.payload
    return Applied(
        grants.add_guardianship(
            db,
            guardian_id=p["guardian_id"],
            child_id=p["child_id"],
            parental_responsibility=bool(p["parental_responsibility"]),
            now=now,
        )
    )


def _consent(
    db: Connection, stored: StoredProposal, approver: str | None, device: str | None, now: datetime
) -> Applied:
    p = stored.payload
    return Applied(
        grants.add_consent(
            db,
            child_id=p["child_id"],
            given_by=p["given_by"],
            recipient_id=p["recipient_id"],
            categories=p["categories"],
            purpose=p["purpose"],
            valid_from=_time(p.get("valid_from")),
            valid_to=_time(p.get("valid_to")),
            evidence_record_id=p.get("evidence_record_id"),
            replaces=p.get("replaces"),
            by=stored.proposed_by,
            now=now,
        )
    )


def _court_order(
    db: Connection, stored: StoredProposal, approver: str | None, device: str | None, now: datetime
) -> Applied:
    p = stored.payload
    valid_from, valid_to = _time(p["valid_from"]), _time(p["valid_to"])
    assert valid_from is not None and valid_to is not None
    return Applied(
        grants.add_court_order(
            db,
            child_id=p["child_id"],
            effect=p["effect"],
            subject_id=p["subject_id"],
            categories=p["categories"],
            reference=p["reference"],
            valid_from=valid_from,
            valid_to=valid_to,
            evidence_record_id=p.get("evidence_record_id"),
            replaces=p.get("replaces"),
            by=stored.proposed_by,
            now=now,
            guardians_told=p.get("guardians_told", True),
        )
    )


def _court_order_end(
    db: Connection, stored: StoredProposal, approver: str | None, device: str | None, now: datetime
) -> Applied:
    p = stored.payload
    if not grants.end_court_order(
        db, p["court_order_id"], by=stored.proposed_by, reason=p["reason"], now=now
    ):
        raise InvalidChangeError("the court order has already ended")
    return Applied(p["court_order_id"])


def _admin(
    db: Connection, stored: StoredProposal, approver: str | None, device: str | None, now: datetime
) -> Applied:
    p = stored.payload
    principal_id = grants.add_principal(
        db,
        kind="staff",
        display_name=p["display_name"],
        roles=p["roles"],
        organisation=p.get("organisation"),
        now=now,
    )
    # The approver, not the proposer, hands the new admin their first code.
    code, expires = issue_code(
        db,
        principal_id=principal_id,
        now=now,
        issued_by=approver,
        issued_device=device,
        purpose="approved",
    )
    return Applied(principal_id, code, expires)


def _device(
    db: Connection, stored: StoredProposal, approver: str | None, device: str | None, now: datetime
) -> Applied:
    principal_id = stored.payload["principal_id"]
    if grants.kind_of(db, principal_id) is None:
        raise InvalidChangeError("the person is no longer active")
    recovering = has_devices(db, principal_id)
    code, expires = issue_code(
        db,
        principal_id=principal_id,
        now=now,
        issued_by=approver,
        issued_device=device,
        purpose="recovered" if recovering else "approved",
    )
    notify(
        db,
        principal_id=principal_id,
        kind="device.recovery_approved" if recovering else "device.code_approved",
        detail={
            "proposal_id": stored.proposal_id,
            "proposed_by": stored.proposed_by,
            "approved_by": approver,
        },
        now=now,
    )
    return Applied(None, code, expires)


def _rooms_import(
    db: Connection,
    stored: StoredProposal,
    approver: str | None,
    device: str | None,
    now: datetime,
    root: RootKeyProvider | None = None,
) -> Applied:
    planned = imports.replan(
        db,
        stored.payload,
        proposer_id=stored.proposed_by,
        now=now,
    )
    if approver is not None and approver in planned.beneficiaries:
        raise InvalidChangeError("the import would give you read rights: another admin approves it")
    codes = imports.apply(
        db, planned, now=now, root=root, approver=approver, approver_device=device
    )
    return Applied(None, codes=codes)


_APPLY: dict[
    ProposalAction,
    Callable[[Connection, StoredProposal, str | None, str | None, datetime], Applied],
] = {
    ProposalAction.ASSIGNMENT_CREATE: _assignment,
    ProposalAction.GUARDIANSHIP_CREATE: _guardianship,
    ProposalAction.CONSENT_CREATE: _consent,
    ProposalAction.COURT_ORDER_CREATE: _court_order,
    ProposalAction.COURT_ORDER_END: _court_order_end,
    ProposalAction.ADMIN_CREATE: _admin,
    ProposalAction.DEVICE_ENROL: _device,
    ProposalAction.ROOMS_IMPORT: _rooms_import,
}
