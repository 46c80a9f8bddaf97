"""A version's ciphertext in the blob store: where to upload it, and whether what was stored
is what the commit claims.

An upload is one PUT up to the multipart threshold and parts with their own URLs beyond it;
every URL lives ``UPLOAD_URL_S`` (the sweep keeps a removed version's object until then). A
commit is checked against the stored object: its size and the store's MD5s of what it
received (docs/decisions/0008), or else its size and digest (BLAKE3, or SHA-256 from older
clients), read back (docs/decisions/0006-commit-digest-check.md, 0022-ciphertext-digest.md).
A small single-upload version's commit may instead carry the ciphertext itself
(``INLINE_CIPHERTEXT_MAX``; decision 0030): the service hashes what it received and stores
it, so nothing is read back.
"""

from __future__ import annotations

import hmac
import io
import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, select

from keyservice.db.engine import reading
from keyservice.db.tables import record_versions
from keyservice.settings import Settings
from vault.format import CiphertextDigest, digest_of
from vault.storage import MAX_PARTS, BlobStore, CompletedPart, ObjectNotFound, StorageError

log = logging.getLogger("keyservice.records")

UPLOAD_URL_S = 3600
# The largest ciphertext a commit may carry inline, and a release answer (decision 0030): a
# constant, not a setting, so that every client and service agree; its base64 (342 KiB) fits
# under the JSON body cap (keyservice/bodylimit.py). vault/client/writing.py has the same.
INLINE_CIPHERTEXT_MAX = 256 * 1024
INLINE_TOO_LARGE = f"an inline ciphertext is at most {INLINE_CIPHERTEXT_MAX} bytes"


@dataclass(frozen=True)
class UploadPlan:
    """Where the client uploads a version's ciphertext; ``upload_id`` stays in the catalog."""

    method: Literal["single", "multipart"]
    url: str | None = None
    part_size: int | None = None
    part_urls: tuple[str, ...] | None = None
    upload_id: str | None = None


@dataclass(frozen=True)
class UploadClaim:
    """What a commit says was uploaded: the ciphertext's size and digest (with its
    algorithm), the parts of a multipart upload, and the MD5 of each piece uploaded, if the
    client sent them."""

    ciphertext_size: int
    digest: CiphertextDigest
    parts: tuple[CompletedPart, ...] = ()
    part_md5s: tuple[bytes, ...] = ()


def plan_upload(blobs: BlobStore, settings: Settings, *, object_name: str, size: int) -> UploadPlan:
    """One PUT up to the multipart threshold; beyond it, parts with their own URLs."""
    if size <= settings.multipart_threshold_bytes:
        return UploadPlan(
            method="single",
            url=blobs.presign_put(object_name, size=size, expires_s=UPLOAD_URL_S),
        )
    part_size = max(settings.part_size_bytes, -(-size // MAX_PARTS))
    planned = blobs.start_multipart(
        object_name, size=size, part_size=part_size, expires_s=UPLOAD_URL_S
    )
    return UploadPlan(
        method="multipart",
        part_size=planned.part_size,
        part_urls=tuple(planned.part_urls),
        upload_id=planned.upload_id,
    )


def version_state(engine: Engine, *, object_name: str, upload_id: str | None) -> str | None:
    """The state of the version an object (and its multipart upload) belongs to; None if
    there is no such version (never, or no more: swept)."""
    query = select(record_versions.c.state).where(record_versions.c.object_name == object_name)
    if upload_id is not None:
        query = query.where(record_versions.c.upload_id == upload_id)
    with engine.connect() as connection, reading(connection):
        found: str | None = connection.execute(query).scalar()
    return found


def stored_object_matches(
    blobs: BlobStore,
    claim: UploadClaim,
    *,
    object_name: str,
    upload_id: str | None,
    planned_size: int,
) -> bool:
    """Complete a multipart upload if one is open, then check the stored object against the
    claim: its size and the store's MD5s of what it received, or else its size and digest
    (in the claim's algorithm), read back."""
    if claim.ciphertext_size != planned_size:
        return False
    try:
        if upload_id is not None:
            blobs.complete_multipart(object_name, upload_id=upload_id, parts=list(claim.parts))
        # The store's own MD5s of what it received, when it keeps them (S3's ETag), are
        # checked without reading the object; otherwise, or if they differ, it is read.
        if claim.part_md5s and md5s_match(
            blobs,
            object_name,
            size=claim.ciphertext_size,
            part_md5s=claim.part_md5s,
            multipart=upload_id is not None,
        ):
            return True
        digest = blobs.digest_if_size(object_name, size=claim.ciphertext_size, alg=claim.digest.alg)
    except StorageError:
        log.warning("commit: the stored object could not be checked", exc_info=True)
        return False
    return digest is not None and hmac.compare_digest(digest, claim.digest.value)


def stored_inline(
    blobs: BlobStore,
    claim: UploadClaim,
    ciphertext: bytes,
    *,
    object_name: str,
    upload_id: str | None,
    planned_size: int,
) -> bool:
    """Store a single-upload version's ciphertext carried by its commit, if it is what the
    claim names: the size planned, and the digest (in the claim's algorithm) the service
    computes of the bytes it received. False, and nothing stored, otherwise."""
    if (
        upload_id is not None
        or len(ciphertext) > INLINE_CIPHERTEXT_MAX
        or not claim.ciphertext_size == planned_size == len(ciphertext)
        or not digest_of(claim.digest.alg, ciphertext).matches(claim.digest)
    ):
        return False
    try:
        blobs.put(object_name, io.BytesIO(ciphertext))
    except StorageError:
        log.warning("commit: the inline ciphertext could not be stored", exc_info=True)
        return False
    return True


def md5s_match(
    blobs: BlobStore,
    object_name: str,
    *,
    size: int,
    part_md5s: tuple[bytes, ...],
    multipart: bool,
) -> bool:
    """The store's check of the client's MD5s; a store that cannot answer (a failed HEAD)
    leaves the decision to the read-back rather than refusing the commit."""
    try:
        return blobs.md5s_match(object_name, size=size, part_md5s=part_md5s, multipart=multipart)
    except ObjectNotFound:
        raise
    except StorageError:
        log.warning("commit: the store's MD5s could not be checked; reading the object")
        return False
