"""The record header (docs/FORMAT.md, "Header").

    magic (8) || attributes (A) || suite (1) || chunk_size_log2 (1) || salt (32)
    || commitment (32) || metadata_length u16 || encrypted metadata (M) || mac (32)

Parsing is separate from verification: `parse_header` only checks structure and reports
malformed input precisely; `verify_header` does the cryptographic checks, in the order the
spec gives, and collapses every failure into one IntegrityError.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

from vault.format.attributes import FORMAT_VERSION, ID_SIZE, MAX_CHILDREN, RecordAttributes
from vault.format.errors import FormatError, IntegrityError, UnsupportedVersionError
from vault.format.keys import (
    COMMITMENT_SIZE,
    SALT_SIZE,
    SUITE,
    check_record_key,
    header_keys,
)
from vault.format.metadata import (
    MAX_METADATA_SIZE,
    MIN_METADATA_SIZE,
    TAG_SIZE,
    Metadata,
    decrypt_metadata,
    encrypt_metadata,
)

MAGIC = b"\x89CVR\r\n\x1a\n"
MIN_CHUNK_SIZE_LOG2 = 12
MAX_CHUNK_SIZE_LOG2 = 24
DEFAULT_CHUNK_SIZE_LOG2 = 18
MIN_CHUNK_SIZE = 1 << MIN_CHUNK_SIZE_LOG2
MAX_CHUNK_SIZE = 1 << MAX_CHUNK_SIZE_LOG2
DEFAULT_CHUNK_SIZE = 1 << DEFAULT_CHUNK_SIZE_LOG2
MAC_SIZE = 32
MIN_ENCRYPTED_METADATA_SIZE = MIN_METADATA_SIZE + TAG_SIZE
MAX_ENCRYPTED_METADATA_SIZE = MAX_METADATA_SIZE + TAG_SIZE
ATTRIBUTES_FIXED_SIZE = 23
_AFTER_ATTRIBUTES = 1 + 1 + SALT_SIZE + COMMITMENT_SIZE + 2
MAX_HEADER_SIZE = (
    len(MAGIC)
    + ATTRIBUTES_FIXED_SIZE
    + MAX_CHILDREN * ID_SIZE
    + _AFTER_ATTRIBUTES
    + MAX_ENCRYPTED_METADATA_SIZE
    + MAC_SIZE
)


@dataclass(frozen=True)
class RawHeader:
    """A structurally valid header whose cryptographic checks have not been done yet."""

    attributes_bytes: bytes
    suite: int
    chunk_size_log2: int
    salt: bytes
    commitment: bytes
    encrypted_metadata: bytes
    mac: bytes

    def signed_bytes(self) -> bytes:
        """Every header byte before the MAC, which the MAC covers."""
        return (
            MAGIC
            + self.attributes_bytes
            + struct.pack(">BB", self.suite, self.chunk_size_log2)
            + self.salt
            + self.commitment
            + struct.pack(">H", len(self.encrypted_metadata))
            + self.encrypted_metadata
        )

    def encode(self) -> bytes:
        return self.signed_bytes() + self.mac


@dataclass(frozen=True)
class Header:
    """A verified header: whose record this is, how it is chunked, and what it holds."""

    attributes: RecordAttributes
    chunk_size: int
    salt: bytes
    metadata: Metadata
    size: int
    """Length of the encoded header in bytes; the payload starts here."""


def check_chunk_size(chunk_size: int) -> int:
    """Return log2 of a chunk size the spec allows; refuse any other."""
    log2 = chunk_size.bit_length() - 1
    if not MIN_CHUNK_SIZE_LOG2 <= log2 <= MAX_CHUNK_SIZE_LOG2 or chunk_size != 1 << log2:
        raise FormatError(
            f"chunk size must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes"
        )
    return log2


def parse_header(read: Callable[[int], bytes]) -> RawHeader:
    """Read one header through `read(n)`, which returns up to n bytes (fewer only at the end)."""

    def exactly(n: int, what: str) -> bytes:
        data = read(n)
        if len(data) != n:
            raise FormatError(f"header is truncated in the {what}")
        return data

    if exactly(len(MAGIC), "magic") != MAGIC:
        raise FormatError("not a Carevault record: the magic bytes do not match")
    fixed = exactly(1, "format version")
    if fixed[0] != FORMAT_VERSION:
        raise UnsupportedVersionError(f"format version {fixed[0]} is not supported")
    fixed += exactly(ATTRIBUTES_FIXED_SIZE - 1, "attributes")
    child_count = fixed[-1]
    if not 1 <= child_count <= MAX_CHILDREN:
        raise FormatError(f"child count {child_count} is out of range 1..{MAX_CHILDREN}")
    attributes_bytes = fixed + exactly(child_count * ID_SIZE, "child ids")
    RecordAttributes.parse(attributes_bytes)
    suite, log2 = exactly(2, "suite and chunk size")
    if suite != SUITE:
        raise UnsupportedVersionError(f"suite {suite} is not supported")
    if not MIN_CHUNK_SIZE_LOG2 <= log2 <= MAX_CHUNK_SIZE_LOG2:
        raise FormatError(
            f"chunk size exponent {log2} is out of range "
            f"{MIN_CHUNK_SIZE_LOG2}..{MAX_CHUNK_SIZE_LOG2}"
        )
    salt = exactly(SALT_SIZE, "salt")
    commitment = exactly(COMMITMENT_SIZE, "key commitment")
    (metadata_length,) = struct.unpack(">H", exactly(2, "metadata length"))
    if not MIN_ENCRYPTED_METADATA_SIZE <= metadata_length <= MAX_ENCRYPTED_METADATA_SIZE:
        raise FormatError(
            f"metadata length {metadata_length} is out of range "
            f"{MIN_ENCRYPTED_METADATA_SIZE}..{MAX_ENCRYPTED_METADATA_SIZE}"
        )
    return RawHeader(
        attributes_bytes=attributes_bytes,
        suite=suite,
        chunk_size_log2=log2,
        salt=salt,
        commitment=commitment,
        encrypted_metadata=exactly(metadata_length, "encrypted metadata"),
        mac=exactly(MAC_SIZE, "MAC"),
    )


def verify_header(raw: RawHeader, *, record_key: bytes, attributes: RecordAttributes) -> Header:
    """Check attributes, commitment and MAC, then decrypt the metadata (spec steps 2-5)."""
    check_record_key(record_key)
    if not hmac.compare_digest(raw.attributes_bytes, attributes.canonical()):
        raise IntegrityError() from ValueError("header attributes differ from the expected ones")
    keys = header_keys(record_key=record_key, salt=raw.salt, attributes=attributes)
    if not hmac.compare_digest(raw.commitment, keys.commitment):
        raise IntegrityError() from ValueError("key commitment does not match")
    mac = hmac.new(keys.mac_key, raw.signed_bytes(), sha256).digest()
    if not hmac.compare_digest(raw.mac, mac):
        raise IntegrityError() from ValueError("header MAC does not match")
    return Header(
        attributes=attributes,
        chunk_size=1 << raw.chunk_size_log2,
        salt=raw.salt,
        metadata=decrypt_metadata(keys.metadata_key, raw.encrypted_metadata),
        size=len(raw.signed_bytes()) + MAC_SIZE,
    )


def build_header(
    *,
    record_key: bytes,
    attributes: RecordAttributes,
    chunk_size_log2: int,
    salt: bytes,
    metadata_bytes: bytes,
) -> bytes:
    """Encode and authenticate a header around already-encoded metadata."""
    keys = header_keys(record_key=record_key, salt=salt, attributes=attributes)
    unsigned = RawHeader(
        attributes_bytes=attributes.canonical(),
        suite=SUITE,
        chunk_size_log2=chunk_size_log2,
        salt=salt,
        commitment=keys.commitment,
        encrypted_metadata=encrypt_metadata(keys.metadata_key, metadata_bytes),
        mac=b"",
    )
    return (
        unsigned.signed_bytes() + hmac.new(keys.mac_key, unsigned.signed_bytes(), sha256).digest()
    )
