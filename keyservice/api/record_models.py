"""Request and response bodies of records, key releases and the disclosure log
(docs/API.md). Nothing here carries key material except ``sealed_key``, sealed to the
caller's device."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from keyservice.api.bounds import ByteCount, Version
from keyservice.api.schemas import MAX_RELEASE_ITEMS, Base64, Id, Md5, Sha256, Strict
from vault.format import Category


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
    # An outside recipient's release through this share only: counted against it and
    # attributed to it; an item it does not list (live) is denied. Ignored for anyone else.
    share_id: Id | None = None


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
    # granted: a key was released (through the share ``share_id``, if set); shared: a share
    # listing the record was made (``share_id``).
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
    # The recipient's organisation, and the purpose of the share the row was made through.
    organisation: str | None = None
    purpose: str | None = None
