"""Request and response bodies (docs/API.md). Separate from the tables on purpose: nothing
here carries key material except ``sealed_key`` (sealed to the caller's device), and only the
fields a caller needs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from keyservice.api.bounds import ByteCount, Version
from keyservice.api.encoding import b64decode
from keyservice.ids import ID_PATTERN
from vault.format import Category

MAX_RELEASE_ITEMS = 1000

Id = Annotated[str, Field(pattern=ID_PATTERN, description="32 lowercase hex characters")]
StaffRole = Literal["educator", "manager", "dsl", "admin"]
AssignmentRole = Literal["educator", "manager", "dsl"]


def _key32(value: str) -> str:
    if len(b64decode(value)) != 32:
        raise ValueError("must be a 32-byte key, base64url")
    return value


def _b64(value: str) -> str:
    b64decode(value)
    return value


def _md5(value: str) -> str:
    if len(b64decode(value)) != 16:
        raise ValueError("must be a 16-byte MD5, base64url")
    return value


def _sha256(value: str) -> str:
    if len(b64decode(value)) != 32:
        raise ValueError("must be a 32-byte SHA-256, base64url")
    return value


PublicKey32 = Annotated[str, AfterValidator(_key32)]
Md5 = Annotated[str, AfterValidator(_md5)]
Sha256 = Annotated[str, AfterValidator(_sha256)]
Base64 = Annotated[str, Field(max_length=1 << 16), AfterValidator(_b64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrolRequest(Strict):
    code: str = Field(min_length=8, max_length=64)
    device_name: str = Field(min_length=1, max_length=200)
    signing_key: PublicKey32
    receiving_key: PublicKey32


class EnrolResponse(BaseModel):
    principal_id: str
    device_id: str
    kind: str
    display_name: str
    roles: list[str]
    audience: str


class Me(BaseModel):
    principal_id: str
    device_id: str
    kind: str
    display_name: str
    roles: list[str]
    organisation: str | None


class PrincipalCreate(Strict):
    kind: Literal["staff", "guardian", "external"]
    display_name: str = Field(min_length=1, max_length=200)
    roles: list[StaffRole] = Field(default_factory=list, max_length=4)
    organisation: str | None = Field(default=None, max_length=200)


class PrincipalCreated(BaseModel):
    principal_id: str


class EnrolmentCode(BaseModel):
    code: str
    expires_at: datetime


class ChildCreate(Strict):
    display_name: str = Field(min_length=1, max_length=200)
    room: str | None = Field(default=None, max_length=100)


class ChildCreated(BaseModel):
    child_id: str


class ChildPublic(BaseModel):
    child_id: str
    display_name: str
    room: str | None
    relation: str


class KeyRotated(BaseModel):
    child_id: str
    version: int
    rewrapped: int


class AssignmentCreate(Strict):
    staff_id: Id
    child_id: Id
    role: AssignmentRole
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class AssignmentCreated(BaseModel):
    assignment_id: str


class GuardianshipCreate(Strict):
    guardian_id: Id
    child_id: Id
    parental_responsibility: bool


class GuardianshipCreated(BaseModel):
    guardianship_id: str


class ConsentCreate(Strict):
    child_id: Id
    given_by: Id
    recipient_id: Id
    categories: list[Category] = Field(min_length=1, max_length=7)
    purpose: str = Field(min_length=1, max_length=500)
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    evidence_record_id: Id | None = None
    # A consent this one corrects: ended, with a reason naming this one, when this takes effect.
    replaces: Id | None = None


class ConsentCreated(BaseModel):
    consent_id: str


class CourtOrderCreate(Strict):
    child_id: Id
    effect: Literal["disclose", "restrict_guardian"]
    subject_id: Id
    categories: list[Category] = Field(min_length=1, max_length=7)
    reference: str = Field(min_length=1, max_length=200)
    valid_from: datetime
    valid_to: datetime
    evidence_record_id: Id | None = None
    # An order this one corrects: ended, with a reason naming this one, when this takes effect.
    replaces: Id | None = None


class CourtOrderCreated(BaseModel):
    court_order_id: str


class RecordCreate(Strict):
    child_ids: list[Id] = Field(min_length=1, max_length=64)
    category: Category
    withheld_from_guardians: bool = False
    ciphertext_size: ByteCount


class Attributes(BaseModel):
    record_id: str
    version: int
    child_ids: list[str]
    category: str


class Upload(BaseModel):
    method: Literal["single", "multipart"]
    url: str | None = None
    part_size: int | None = None
    part_urls: list[str] | None = None


class RecordCreated(BaseModel):
    """A new record version: its key sealed to the caller's device, and where to upload."""

    record_id: str
    version: int
    attributes: Attributes
    ephemeral_public: str
    sealed_key: str
    upload: Upload


class UploadedPart(Strict):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200)


class CommitRequest(Strict):
    ciphertext_size: ByteCount
    ciphertext_sha256: Sha256
    encrypted_metadata: Base64
    parts: list[UploadedPart] | None = Field(default=None, max_length=10_000)
    # The MD5 of each piece the client uploaded (the whole object, or each part in order),
    # for a store that keeps what it received as MD5s (S3's ETag) to check without a read.
    part_md5s: list[Md5] | None = Field(default=None, max_length=10_000)


class VersionPublic(BaseModel):
    record_id: str
    version: int
    category: str
    child_ids: list[str]
    withheld_from_guardians: bool
    encrypted_metadata: str | None
    created_at: datetime
    created_by: str


class ReleaseItem(Strict):
    record_id: Id
    # None (or absent): the record's latest committed version, decided and audited once.
    version: Version | None = None


class ReleaseRequest(Strict):
    items: list[ReleaseItem] = Field(min_length=1, max_length=MAX_RELEASE_ITEMS)
    include_urls: bool = False


class ReleaseResult(BaseModel):
    """One item's result. Granted: every field but ``code`` (``encrypted_metadata`` if the
    version has some, ``download_url`` if asked for). Denied: ``record_id``, ``version`` as
    asked (null if the item named none), ``status`` and ``code`` only."""

    record_id: str
    # The version released; for a denied item the version asked for, null if none was.
    version: int | None
    status: Literal["granted", "denied"]
    code: str | None = None
    attributes: Attributes | None = None
    sealed_key: str | None = None
    ciphertext_size: int | None = None
    ciphertext_sha256: str | None = None
    encrypted_metadata: str | None = None
    download_url: str | None = None


class ReleaseResponse(BaseModel):
    """The release's answer, one result per item asked for, in order. The route writes it as
    JSON text itself (``keyservice.api.release.release_json``); this model is its schema,
    and a test checks that the text is what the model gives."""

    ephemeral_public: str
    results: list[ReleaseResult]


class Disclosure(BaseModel):
    # granted: a key was released; shared: a share listing the record was made (share_id).
    decision: Literal["granted", "shared"] = "granted"
    record_id: str
    version: int
    principal_id: str
    basis: str
    at: datetime
    audit_seq: int
    # The device the key was sealed to, and how it was enrolled ("recovered" stands out).
    device_id: str | None = None
    device_origin: str | None = None
    share_id: str | None = None
