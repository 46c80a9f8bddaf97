"""Bodies of retention, legal holds and shredding (docs/API.md; decision 0019)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from keyservice.api.schemas import Id, Strict


class ChildDatesSet(Strict):
    # Either may be null: unknown (a rule resting on it is never met), or cleared.
    date_of_birth: date | None = None
    left_on: date | None = None


class ChildDatesPublic(BaseModel):
    child_id: str
    date_of_birth: date | None
    left_on: date | None


class DuePublic(BaseModel):
    """A record, or a whole child, whose retention is over, with the rule that made it due."""

    kind: str = Field(description="record | child")
    record_id: str | None
    child_id: str | None
    child_ids: list[str]
    category: str | None
    rule: str = Field(description="the retention rule, e.g. *=left+5y or safeguarding=age+25y")
    due_on: date
    on_hold: bool
    shred_open: bool


class HoldSet(Strict):
    reason: str = Field(min_length=1, max_length=500)


class HoldLift(Strict):
    reason: str = Field(min_length=1, max_length=500)


class HoldPublic(BaseModel):
    hold_id: str
    child_id: str
    state: str = Field(description="on | lifted")


class ShredRequest(Strict):
    # Exactly one of record_id and child_id.
    record_id: Id | None = None
    child_id: Id | None = None
    reason: str = Field(min_length=1, max_length=500)
    # Only say what would be destroyed; store nothing and write no audit entry.
    dry_run: bool = False


class ShredCancel(Strict):
    reason: str = Field(min_length=1, max_length=500)


class ShredPublic(BaseModel):
    shred_id: str | None = Field(description="null in a dry run")
    target: str = Field(description="record | child")
    record_id: str | None
    child_id: str | None
    child_ids: list[str]
    reason: str
    state: str = Field(description="pending | approved | cancelled | done (or dry-run)")
    requested_by: str
    requested_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None
    not_before: datetime | None = Field(
        default=None, description="when an approved shred is carried out (the wait's end)"
    )
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    done_at: datetime | None = None
    # What carrying it out destroys (as counted at the request; null otherwise).
    records: int | None = None
    versions: int | None = None


class ShredCertificatePublic(BaseModel):
    """The signed certificate (vault/shred.py): verify ``statement`` and ``signature`` with the
    service key you pinned; ``service_key`` is only what this service says its key is."""

    shred_id: str
    statement: str = Field(description="base64url of the exact signed bytes")
    signature: str = Field(description="base64url Ed25519 signature")
    service_key: str = Field(description="base64url Ed25519 public key of the service")


class ServiceKeyPublic(BaseModel):
    public_key: str = Field(
        description="base64url Ed25519 key signing checkpoints and certificates"
    )
