"""Request and response models of the shares routes (keyservice/api/shares.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from keyservice.api.record_models import ReleaseResponse
from keyservice.api.schemas import MAX_RELEASE_ITEMS, Base64, Id, Sha256, Strict
from vault.format import Category


class ShareCreate(Strict):
    recipient_id: Id
    basis: Literal["consent", "court_order"]
    basis_id: Id
    purpose: str = Field(min_length=1, max_length=500)
    # Either the records, by id, or the categories whose records of the basis's child to list.
    record_ids: list[Id] = Field(default_factory=list, max_length=1000)
    categories: list[Category] = Field(default_factory=list, max_length=7)
    # Default: 14 days, or the basis's end if sooner; never past the basis's end.
    valid_to: datetime | None = None
    # Downloads allowed per record version (a retry by the same device within 10 minutes is
    # not counted); none: no cap.
    download_cap: int | None = Field(default=None, ge=1, le=1000)
    # The recipient is expected to acknowledge receipt by then: after now, not after
    # valid_to. None: no deadline.
    ack_due: datetime | None = None


class ShareRevoke(Strict):
    reason: str = Field(min_length=1, max_length=500)


class ShareItemPublic(BaseModel):
    record_id: str
    version: int
    # Downloads counted so far, and left under the cap (None without a cap).
    used: int
    remaining: int | None
    # The committed ciphertext's size in bytes (the recipient's client sizes its first key
    # release by it).
    ciphertext_size: int | None = None


class SharePublic(BaseModel):
    share_id: str
    recipient_id: str
    basis: Literal["consent", "court_order"]
    basis_id: str
    child_id: str
    purpose: str
    created_by: str
    created_at: datetime
    valid_from: datetime
    valid_to: datetime
    download_cap: int | None
    state: Literal["active", "expired", "revoked"]
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    items: list[ShareItemPublic]
    # Receipts (docs/decisions/0015-receipts.md): sent | opened | acknowledged | expired |
    # revoked, and overdue: an acknowledgement deadline passed without one.
    status: Literal["sent", "opened", "acknowledged", "expired", "revoked"]
    opened_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_device: str | None
    ack_due: datetime | None
    overdue: bool


class ReceivedItemIn(Strict):
    record_id: Id
    version: int = Field(ge=1)
    # SHA-256 of the version's ciphertext as received, base64url.
    ciphertext_sha256: Sha256


class ShareAck(Strict):
    """The recipient's acknowledgement: every record version of the share with the digest of
    what it received, and its device's Ed25519 signature of the receipt statement
    (vault/receipts.py) over exactly these items."""

    items: list[ReceivedItemIn] = Field(min_length=1, max_length=1000)
    signature: Base64


class Invitation(BaseModel):
    """A one-time enrolment code for a recipient with no device yet, shown only in the answer
    that made the share, to pass on out of band (docs/decisions/0014-invitations.md)."""

    code: str
    expires_at: datetime


class ShareCreated(SharePublic):
    # None: the recipient has (or had) a device, or could read something its creator may not.
    invitation: Invitation | None = None


class HeldItem(Strict):
    record_id: Id
    version: int = Field(ge=1)


class ShareOpen(Strict):
    """The recipient opens a share to download it (``POST /v1/shares/{id}/open``): the items
    its device already holds, received and checked (not released again), and how many bytes
    of ciphertext the release that comes with the answer may cover."""

    held: list[HeldItem] = Field(default_factory=list, max_length=MAX_RELEASE_ITEMS)
    first_bytes: int = Field(default=32 << 20, ge=0, le=1 << 30)


class ShareOpened(BaseModel):
    """The share as it stood before this request's release, and that release: the first
    items not held, in the share's order, as ``POST /v1/keys/release`` with ``share_id`` and
    ``include_urls`` answers them (denied items included). ``release`` is null when the
    share is not active or nothing is left to release: then nothing was asked or audited."""

    share: SharePublic
    release: ReleaseResponse | None
