"""Typed answers of the SDK. Record metadata here is already decrypted on this device."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from vault.format import Category, CiphertextDigest, RecordAttributes


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
class IssuedCode:
    """A new member of staff's first enrolment code, made when the approver approved an import
    that created them (docs/decisions/0027-import-creates-people.md): the approver hands it
    to that person. ``line``: the CSV line that named them."""

    line: int
    principal_id: str
    display_name: str
    code: EnrolmentCode


@dataclass(frozen=True)
class Offboarded:
    """What offboarding a member of staff ended (with ``dry_run``: would end, and nothing did).

    The person and every device of theirs are revoked, so their next request is refused;
    shares they created for others stay (``shares_kept`` counts the live ones).
    """

    principal_id: str
    dry_run: bool
    roles: tuple[str, ...]
    assignments_ended: tuple[str, ...]
    devices_revoked: tuple[str, ...]
    codes_voided: int
    proposals_cancelled: tuple[str, ...]
    shares_kept: int
    # The other admins, managers and DSLs told (offboarding an admin, manager or DSL).
    announced_to: tuple[str, ...]


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
    # An approved import that created staff: each one's first code (the approver's answer).
    enrolment_codes: tuple[IssuedCode, ...] = ()

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


@dataclass(frozen=True)
class ShareItem:
    """One record version a share covers (shares are frozen to the versions they were made
    with), the downloads counted so far, and those left under the cap (None: no cap)."""

    record_id: str
    version: int
    used: int
    remaining: int | None
    # The committed ciphertext's size in bytes (None from a key service that does not say).
    ciphertext_size: int | None = None


@dataclass(frozen=True)
class Share:
    """Records shared with one outside recipient on a consent or court order, until
    ``valid_to``.

    ``state`` is active, expired or revoked. ``status`` (sent, opened, acknowledged, expired,
    revoked) and ``invitation`` (the one-time enrolment code of a recipient invited by the
    share, for its creator to hand over) are set when the key service tells them, None
    otherwise. ``opened_at`` is the first release through the share, ``acknowledged_at`` and
    ``acknowledged_device`` its recipient's signed receipt, ``ack_due`` the deadline for that
    receipt and ``overdue`` whether it passed without one (docs/decisions/0015-receipts.md);
    a key service that predates receipts sends none of them (None, and not overdue).
    """

    share_id: str
    recipient_id: str
    basis: str
    basis_id: str
    child_id: str
    purpose: str
    created_by: str
    created_at: datetime
    valid_from: datetime
    valid_to: datetime
    download_cap: int | None
    state: str
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    items: tuple[ShareItem, ...]
    status: str | None = None
    invitation: EnrolmentCode | None = None
    opened_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_device: str | None = None
    ack_due: datetime | None = None
    overdue: bool = False

    @property
    def active(self) -> bool:
        return self.state == "active"


@dataclass(frozen=True)
class ReceivedItem:
    """A share's record version as it lies in the download directory: the plaintext's file
    (``path``), its size and SHA-256 (hex), its metadata as the record carries it, and the
    SHA-256 (hex) of the ciphertext it was decrypted from, the committed one checked while
    downloading, which a receipt lists (None for an item received by an SDK that did not
    keep it: ``get_share`` fetches it again)."""

    record_id: str
    version: int
    path: Path
    size: int
    sha256: str
    file_name: str
    content_type: str
    ciphertext_sha256: str | None = None


@dataclass(frozen=True)
class ShareDownload:
    """What ``Client.get_share`` did: the items it fetched now, and those it skipped because
    they were already received and still verify."""

    share_id: str
    directory: Path
    fetched: tuple[ReceivedItem, ...]
    skipped: tuple[ReceivedItem, ...]


# --- what the key service answers, parsed once (vault/client/wire.py); not re-exported ----


@dataclass(frozen=True)
class Enrolled:
    """Who a newly enrolled device is to the key service, and the audience it signs for."""

    principal_id: str
    device_id: str
    audience: str


@dataclass(frozen=True)
class ExpectedCiphertext:
    """The size and digest (with its algorithm) of a version's ciphertext, as the key
    service checked them at commit and hands them out with the record key."""

    size: int
    digest: CiphertextDigest


@dataclass(frozen=True)
class SingleUpload:
    """The whole ciphertext in one PUT to ``url``."""

    url: str

    def piece_size(self, size: int) -> int:
        """How many bytes each uploaded piece holds: the whole object."""
        return size


@dataclass(frozen=True)
class MultipartUpload:
    """The ciphertext in parts: part ``i`` (from 1) by PUT to ``part_urls[i - 1]``, every part
    but the last ``part_size`` bytes. The key service completes the upload at commit."""

    part_size: int
    part_urls: tuple[str, ...]

    def piece_size(self, size: int) -> int:
        """How many bytes each uploaded piece holds (the last may hold fewer)."""
        return self.part_size


UploadPlan = SingleUpload | MultipartUpload


@dataclass(frozen=True)
class SealedKey:
    """A record key sealed to this device, and the attributes it is bound to."""

    attributes: RecordAttributes
    sealed: bytes = field(repr=False)


@dataclass(frozen=True)
class NewVersion:
    """A record version the key service created: its key, and where to upload."""

    ephemeral_public: bytes
    key: SealedKey
    upload: UploadPlan


@dataclass(frozen=True)
class GrantedKey:
    """One granted item of a key release, with what the commit checked of its ciphertext."""

    key: SealedKey
    ciphertext: ExpectedCiphertext
    encrypted_metadata: bytes | None
    download_url: str | None
    # A small version's ciphertext, if asked for (decision 0030); checked before use.
    inline: bytes | None = None


@dataclass(frozen=True)
class Release:
    """A key release: the items granted, sealed under one ephemeral key. Denied items are
    left out; the service does not say why (missing, uncommitted, deleted or forbidden)."""

    ephemeral_public: bytes
    granted: tuple[GrantedKey, ...]


@dataclass(frozen=True)
class ShareOpening:
    """``POST /v1/shares/{id}/open``'s answer: the share, and the release that came with it
    (None: nothing was released, the share not being active or nothing being left), with
    every item it asked, granted or denied, in order."""

    share: Share
    release: Release | None
    asked: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ListedVersion:
    """A committed record version as the key service lists it: metadata still sealed."""

    record_id: str
    version: int
    category: Category
    child_ids: tuple[str, ...]
    withheld_from_guardians: bool
    encrypted_metadata: bytes
    created_at: datetime
    created_by: str
