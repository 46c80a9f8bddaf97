"""Bodies of proposals, approvals, endings, devices and notifications (docs/API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from keyservice.api.schemas import Id, Strict

ProposalState = Literal["pending", "approved", "rejected", "cancelled", "expired"]


class IssuedCodePublic(BaseModel):
    """A new member of staff's first enrolment code (single use, 24 hours)."""

    line: int
    principal_id: str
    display_name: str
    code: str
    expires_at: datetime


class ProposalPublic(BaseModel):
    """A change that gives read rights, waiting for (or decided by) a second person.

    ``payload`` is the request that proposed it (opaque ids, roles, categories, dates).
    ``enrolment_code`` is set once, in the approval's answer to the approver, when approving
    made a code: the approver hands it to the person, so the proposer never sees it.
    """

    proposal_id: str
    action: str
    state: ProposalState
    child_id: str | None
    beneficiary_id: str | None
    # Everyone besides the beneficiary who saw an enrolment code of theirs (and so could be
    # acting as them): what an approver should look at before approving.
    beneficiary_vouched_by: list[str] = Field(default_factory=list)
    payload: dict[str, Any]
    proposed_by: str
    proposed_device: str | None
    proposed_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_device: str | None = None
    decided_at: datetime | None = None
    result_id: str | None = None
    reason: str | None = None
    enrolment_code: str | None = None
    code_expires_at: datetime | None = None
    # An import that created staff (decision 0027): each one's first code, in the approval's
    # answer to the approver only.
    enrolment_codes: list[IssuedCodePublic] = Field(default_factory=list)


class ProposalDecision(Strict):
    reason: str | None = Field(default=None, max_length=500)
    # What the approver saw as the proposal's beneficiary_vouched_by: the approval is refused
    # (409) if it changed since, so nobody slips a code of their own in between.
    beneficiary_vouched_by: list[Id] | None = Field(default=None, max_length=100)


class EndRequest(Strict):
    """Ending a guardianship, consent or court order: never deleted, always with a reason."""

    reason: str = Field(min_length=1, max_length=500)


class WithdrawRequest(Strict):
    reason: str | None = Field(default=None, max_length=500)


class DevicePublic(BaseModel):
    device_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    # first | added | recovered
    origin: str
    approved_by: str | None
    current: bool


class NotificationPublic(BaseModel):
    notification_id: str
    at: datetime
    kind: str
    detail: dict[str, Any]
