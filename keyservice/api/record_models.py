"""Request and response bodies of records, key releases and the disclosure log
(docs/API.md). Nothing here carries key material except ``sealed_key``, sealed to the
caller's device."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from keyservice.api.bounds import ByteCount, Version
from keyservice.api.encoding import b64decode
from keyservice.api.schemas import MAX_RELEASE_ITEMS, Base64, Id, Md5, Sha256, Strict
from vault.format import DIGEST_SIZE, Category

DigestAlg = Literal["blake3", "sha256"]


def _digest32(value: str) -> str:
    if len(b64decode(value)) != DIGEST_SIZE:
        raise ValueError("must be a 32-byte digest, base64url")
    return value


Digest32 = Annotated[str, AfterValidator(_digest32)]


def _base64(value: str) -> str:
    b64decode(value)
    return value


# Unbounded here: the JSON body cap bounds it, and the route answers 413 beyond the limit.
InlineCiphertext = Annotated[str, AfterValidator(_base64)]


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
    """The ciphertext's size and digest: ``ciphertext_digest_alg`` and ``ciphertext_digest``
    (docs/FORMAT.md, "Ciphertext digest"), or, from a client older than BLAKE3, only
    ``ciphertext_sha256``; exactly one of the two forms."""

    ciphertext_size: ByteCount
    ciphertext_digest_alg: DigestAlg | None = None
    ciphertext_digest: Digest32 | None = None
    ciphertext_sha256: Sha256 | None = None
    encrypted_metadata: Base64
    parts: list[UploadedPart] | None = Field(default=None, max_length=10_000)
    # The MD5 of each piece the client uploaded (the whole object, or each part in order),
    # for a store that keeps what it received as MD5s (S3's ETag) to check without a read.
    part_md5s: list[Md5] | None = Field(default=None, max_length=10_000)
    # A small single upload's ciphertext itself, base64url (decision 0030): the service
    # checks and stores it, and nothing need be uploaded first. Longer than
    # INLINE_CIPHERTEXT_MAX bytes: 413 (checked by the route; the JSON body cap bounds it).
    ciphertext: InlineCiphertext | None = None

    @model_validator(mode="after")
    def _one_digest(self) -> CommitRequest:
        pair = (self.ciphertext_digest_alg, self.ciphertext_digest)
        if self.ciphertext_sha256 is not None:
            if pair != (None, None):
                raise ValueError("name the digest once: ciphertext_digest or ciphertext_sha256")
        elif None in pair:
            raise ValueError("ciphertext_digest_alg and ciphertext_digest are both required")
        return self

    def digest(self) -> tuple[DigestAlg, bytes]:
        """The claimed digest's algorithm and bytes, whichever form named them."""
        if self.ciphertext_sha256 is not None:
            return "sha256", b64decode(self.ciphertext_sha256)
        assert self.ciphertext_digest_alg is not None and self.ciphertext_digest is not None
        return self.ciphertext_digest_alg, b64decode(self.ciphertext_digest)


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
    # Each granted version of at most INLINE_CIPHERTEXT_MAX bytes answered with its
    # ciphertext (up to INLINE_RELEASE_MAX bytes in all; decision 0030).
    include_ciphertext: bool = False
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
    # The committed ciphertext digest and its algorithm ("blake3", or "sha256" for versions
    # committed before BLAKE3): what every downloader checks the bytes against.
    ciphertext_digest_alg: DigestAlg | None = None
    ciphertext_digest: str | None = None
    encrypted_metadata: str | None = None
    download_url: str | None = None
    # A small version's ciphertext, base64url, if asked for (decision 0030).
    ciphertext: str | None = None


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
