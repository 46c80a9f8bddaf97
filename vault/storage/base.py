"""The BlobStore interface and the values that cross it.

A blob store holds opaque ciphertext objects under random names (``vault.storage.names``).
Clients never hold storage credentials: the key service hands them short-lived URLs for one
object (``presign_put``/``presign_get``, or one URL per part for a multipart upload) and the
client moves the bytes itself. An upload URL takes a body of exactly the size it was issued
for. ``put``/``get`` move bytes directly, for tools and tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from vault.storage.errors import UploadError

# S3's limits, kept by every backend so that an upload plan is valid everywhere.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024**4
# Bounded memory for streaming reads (digests, copies).
CHUNK_SIZE = 1024 * 1024


class ByteSource(Protocol):
    """Anything to read bytes from: a file, a socket stream, an HTTP body."""

    def read(self, size: int = -1, /) -> bytes: ...


class BlobReader(ByteSource, Protocol):
    """A stream of an object's bytes; close it when done (``contextlib.closing``)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about an object without reading it.

    ``sha256`` is a digest the backend computed itself from the bytes it stored, when it
    keeps one (never a checksum an uploader supplied); otherwise compute it with
    ``BlobStore.sha256``. ``modified_at`` lets a sweep spare uploads still in progress.
    """

    size: int
    sha256: bytes | None
    modified_at: datetime


@dataclass(frozen=True)
class CompletedPart:
    """A part a client has uploaded: its number (from 1) and the ETag the store answered."""

    part_number: int
    etag: str


@dataclass(frozen=True)
class MultipartUpload:
    """An upload in parts: part ``i`` (from 1) goes by ``PUT part_urls[i - 1]``; every part
    but the last is exactly ``part_size`` bytes."""

    upload_id: str
    part_size: int
    part_urls: tuple[str, ...]


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    name: str
    upload_id: str
    started_at: datetime


def plan_parts(size: int, part_size: int) -> int:
    """The number of parts for ``size`` bytes, or ValueError if the plan breaks S3's limits."""
    if size < 1:
        raise ValueError("a multipart upload needs at least one byte")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ValueError(f"part size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
    count = -(-size // part_size)
    if count > MAX_PARTS:
        raise ValueError(f"{size} bytes in {part_size}-byte parts exceeds {MAX_PARTS} parts")
    return count


def part_length(size: int, part_size: int, number: int) -> int:
    """The length of part ``number`` (from 1) of ``size`` bytes in ``part_size``-byte parts:
    ``part_size``, the last one the rest."""
    return min(part_size, size - part_size * (number - 1))


def check_parts(parts: list[CompletedPart], expected: int | None = None) -> None:
    """Parts must be numbered 1..n in order (and n = ``expected`` when known)."""
    numbers = [p.part_number for p in parts]
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise UploadError("parts must be numbered 1, 2, ... in order")
    if expected is not None and len(numbers) != expected:
        raise UploadError(f"expected {expected} parts, got {len(numbers)}")


class BlobStore(Protocol):
    """Object storage for ciphertext, addressed by opaque names.

    Every method refuses a malformed name with InvalidObjectName before any I/O, raises
    ObjectNotFound for a missing object and BackendError when the backend fails.
    """

    def presign_put(self, name: str, *, size: int, expires_s: int) -> str:
        """A URL through which one ``PUT`` of the whole object, exactly ``size`` bytes,
        succeeds until it expires. The request must declare that Content-Length (S3 signs
        it); a body of another size is refused."""
        ...

    def presign_get(self, name: str, *, expires_s: int) -> str:
        """A URL through which ``GET`` reads the object until it expires."""
        ...

    def start_multipart(
        self, name: str, *, size: int, part_size: int, expires_s: int
    ) -> MultipartUpload:
        """Begin an upload of ``size`` bytes in parts, each with its own presigned URL that
        takes exactly that part's bytes (``part_size``, the last one the rest)."""
        ...

    def complete_multipart(self, name: str, *, upload_id: str, parts: list[CompletedPart]) -> None:
        """Assemble the uploaded parts into the object; UploadError if they do not fit."""
        ...

    def abort_multipart(self, name: str, *, upload_id: str) -> None:
        """Discard an unfinished upload and its parts."""
        ...

    def list_uploads(self, *, started_before: datetime) -> Iterator[PendingUpload]:
        """Unfinished multipart uploads started before then, for a sweep to abort."""
        ...

    def remove_stale_temporaries(self, *, modified_before: datetime) -> int:
        """Remove what writes cut off by a crash left behind (files being written, an upload
        whose start was cut off), last modified before then; return how many. A store that
        writes nothing in place of its objects has none (S3: see ``list_uploads``)."""
        ...

    def stat(self, name: str) -> ObjectInfo:
        """Size (and digest and time, when known) of the object."""
        ...

    def sha256(self, name: str) -> bytes:
        """SHA-256 of the object's bytes, read as a stream in bounded memory."""
        ...

    def sha256_if_size(self, name: str, *, size: int) -> bytes | None:
        """SHA-256 of the object if it is exactly ``size`` bytes, else None, in one look at
        the store: the digest the store computed as it wrote the object when it kept one,
        else one computed by reading it in bounded memory. An object of another size is not
        read to its end."""
        ...

    def digest_if_size(self, name: str, *, size: int, alg: str) -> bytes | None:
        """``sha256_if_size`` for the ciphertext digest ``alg`` ("blake3" or "sha256";
        docs/FORMAT.md, "Ciphertext digest")."""
        ...

    def md5s_match(
        self, name: str, *, size: int, part_md5s: Sequence[bytes], multipart: bool
    ) -> bool:
        """Whether the object is exactly ``size`` bytes and the MD5s the store computed as it
        received them equal ``part_md5s`` (one per piece uploaded: the whole object for a
        single PUT, each part of a multipart upload, in order). S3 keeps them as the ETag.

        False when they differ, or when the store keeps no such checksum (then read the
        object); the object is never read. A transfer check, not a proof against an
        uploader: docs/decisions/0008-commit-checks-the-store-etag.md.
        """
        ...

    def delete(self, name: str) -> None:
        """Remove the object; removing a missing object (even one never written) is done."""
        ...

    def list_names(self, prefix: str = "") -> Iterator[str]:
        """Names of the objects whose names start with ``prefix`` (for sweeps)."""
        ...

    def put(self, name: str, source: ByteSource) -> None:
        """Write the object from a stream, replacing any object of that name."""
        ...

    def get(self, name: str) -> BlobReader:
        """A stream of the object's bytes."""
        ...
