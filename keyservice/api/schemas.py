"""Request and response bodies (docs/API.md). Separate from the tables on purpose: nothing
here carries key material except ``sealed_key`` (sealed to the caller's device), and only the
fields a caller needs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
    # Whether the child's guardians see the shares made under this order (and releases
    # through them) in their disclosure log; an order may say they must not be told.
    guardians_told: bool = True


class CourtOrderCreated(BaseModel):
    court_order_id: str
