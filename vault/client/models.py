"""Typed answers of the SDK. Record metadata here is already decrypted on this device."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vault.format import Category


@dataclass(frozen=True)
class Me:
    """Who this device is to the key service."""

    principal_id: str
    device_id: str
    kind: str
    display_name: str
    roles: tuple[str, ...]
    organisation: str | None


@dataclass(frozen=True)
class Child:
    """A child the caller has a current relationship with."""

    child_id: str
    display_name: str
    room: str | None
    relation: str


@dataclass(frozen=True)
class RecordRef:
    """One committed record version."""

    record_id: str
    version: int


@dataclass(frozen=True)
class RecordInfo:
    """A record version as listed, with its metadata decrypted on this device."""

    record_id: str
    version: int
    category: Category
    child_ids: tuple[str, ...]
    withheld_from_guardians: bool
    created_at: datetime
    created_by: str
    file_name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Disclosure:
    """One entry of a child's disclosure log (606 CMR 7.04(12)(d))."""

    at: datetime
    decision: str
    principal_id: str
    principal_name: str | None
    record_id: str | None
    version: int | None
    basis: str | None
    detail: dict[str, object]


@dataclass(frozen=True)
class EnrolmentCode:
    """A single-use code with which a person enrols a device, and when it expires.

    The code opens an account: hand it over in person and never log it (it is left out of
    this object's ``repr``).
    """

    code: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class Proposal:
    """A change that gives someone read rights, waiting for (or decided by) a second person.

    ``state`` is pending, approved, rejected, cancelled (withdrawn by its proposer) or
    expired. ``payload`` is the request that proposed it. Once approved, ``result_id`` names
    what it made (the assignment, guardianship, consent, court order or new admin), and
    ``enrolment_code`` is set in the approver's own answer when approving made a code (a new
    admin, or a device for someone who already had one): the approver hands it over.
    ``beneficiary_vouched_by`` lists whoever else saw an enrolment code of the person it is
    for, and so could be acting as them: worth a look before approving.
    """

    proposal_id: str
    action: str
    state: str
    child_id: str | None
    beneficiary_id: str | None
    beneficiary_vouched_by: tuple[str, ...]
    payload: dict[str, object]
    proposed_by: str
    proposed_device: str | None
    proposed_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_device: str | None
    decided_at: datetime | None
    result_id: str | None
    reason: str | None
    enrolment_code: EnrolmentCode | None

    @property
    def pending(self) -> bool:
        return self.state == "pending"


@dataclass(frozen=True)
class DeviceInfo:
    """One of the caller's devices. ``origin``: first, added (from another of their own
    devices) or recovered (a code someone else approved); ``current``: the one asking."""

    device_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    origin: str
    approved_by: str | None
    current: bool


@dataclass(frozen=True)
class Notification:
    """Something the key service tells a person about their own account (a recovered device,
    a code approved for them)."""

    notification_id: str
    at: datetime
    kind: str
    detail: dict[str, object]
