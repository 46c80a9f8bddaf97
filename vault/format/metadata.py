"""The record's metadata and its standalone sealed form (docs/FORMAT.md, "Metadata").

metadata        = size u64 || name_length u8 || file_name || type_length u8 || content_type
sealed_metadata = 0x01 || suite || salt (32) || commitment (32) || AES-GCM(metadata)
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.format.attributes import FORMAT_VERSION, RecordAttributes
from vault.format.errors import FormatError, IntegrityError, UnsupportedVersionError
from vault.format.keys import (
    COMMITMENT_SIZE,
    SALT_SIZE,
    SEALED_COMMITMENT_LABEL,
    SEALED_METADATA_LABEL,
    SUITE,
    derive,
)

MAX_PLAINTEXT_SIZE = 2**40
MAX_FILE_NAME_SIZE = 255
MAX_CONTENT_TYPE_SIZE = 127
TAG_SIZE = 16
MIN_METADATA_SIZE = 8 + 1 + 0 + 1 + 1
MAX_METADATA_SIZE = 8 + 1 + MAX_FILE_NAME_SIZE + 1 + MAX_CONTENT_TYPE_SIZE
MIN_SEALED_METADATA_SIZE = 2 + SALT_SIZE + COMMITMENT_SIZE + MIN_METADATA_SIZE + TAG_SIZE
MAX_SEALED_METADATA_SIZE = 2 + SALT_SIZE + COMMITMENT_SIZE + MAX_METADATA_SIZE + TAG_SIZE

# Each metadata key encrypts exactly one message (its salt is fresh), so a fixed nonce is safe.
ZERO_NONCE = bytes(12)
_FORBIDDEN_NAME_CHARS = frozenset("/\\\x7f") | {chr(c) for c in range(0x20)}


@dataclass(frozen=True)
class Metadata:
    """What the plaintext is: its file name, media type and exact size in bytes."""

    file_name: str
    content_type: str
    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.file_name, str) or not isinstance(self.content_type, str):
            raise FormatError("file name and content type must be text")
        if not isinstance(self.size, int) or not 0 <= self.size <= MAX_PLAINTEXT_SIZE:
            raise FormatError(f"plaintext size must be between 0 and {MAX_PLAINTEXT_SIZE} bytes")
        try:
            name = self.file_name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise FormatError("file name is not encodable as UTF-8") from exc
        if len(name) > MAX_FILE_NAME_SIZE:
            raise FormatError(f"file name is longer than {MAX_FILE_NAME_SIZE} bytes in UTF-8")
        if self.file_name in (".", "..") or not _FORBIDDEN_NAME_CHARS.isdisjoint(self.file_name):
            raise FormatError(
                "file name must not be '.' or '..' nor contain '/', '\\' or control characters"
            )
        ctype = self.content_type
        if not 1 <= len(ctype) <= MAX_CONTENT_TYPE_SIZE or not all(" " <= c <= "~" for c in ctype):
            raise FormatError(
                f"content type must be 1 to {MAX_CONTENT_TYPE_SIZE} printable ASCII characters"
            )

    def encode(self) -> bytes:
        """The canonical metadata bytes."""
        name = self.file_name.encode("utf-8")
        ctype = self.content_type.encode("ascii")
        return (
            struct.pack(">QB", self.size, len(name)) + name + struct.pack(">B", len(ctype)) + ctype
        )

    @classmethod
    def decode(cls, data: bytes) -> Metadata:
        """Parse canonical metadata; anything else is a FormatError."""
        if len(data) < MIN_METADATA_SIZE:
            raise FormatError("metadata is truncated")
        size, name_length = struct.unpack_from(">QB", data)
        type_at = 9 + name_length
        if len(data) < type_at + 1:
            raise FormatError("metadata is truncated")
        type_length = data[type_at]
        if len(data) != type_at + 1 + type_length:
            raise FormatError("metadata length does not match its fields")
        try:
            name = data[9:type_at].decode("utf-8")
            ctype = data[type_at + 1 :].decode("ascii")
        except UnicodeDecodeError as exc:
            raise FormatError("metadata text is not valid UTF-8 / ASCII") from exc
        return cls(file_name=name, content_type=ctype, size=size)


def _aead_open(key: bytes, ciphertext: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(ZERO_NONCE, ciphertext, None)
    except InvalidTag as exc:
        raise IntegrityError() from exc


def encrypt_metadata(key: bytes, metadata_bytes: bytes) -> bytes:
    """AES-GCM of the encoded metadata under a key that is used for nothing else."""
    return AESGCM(key).encrypt(ZERO_NONCE, metadata_bytes, None)


def decrypt_metadata(key: bytes, ciphertext: bytes) -> Metadata:
    """Authenticate then parse; a forged ciphertext is an IntegrityError."""
    return Metadata.decode(_aead_open(key, ciphertext))


def seal_metadata(*, record_key: bytes, attributes: RecordAttributes, metadata: Metadata) -> bytes:
    """Standalone encrypted metadata for the key service's catalog."""
    return _seal_encoded(
        record_key=record_key,
        attributes=attributes,
        encoded=metadata.encode(),
        salt=os.urandom(SALT_SIZE),
    )


def _seal_encoded(
    *, record_key: bytes, attributes: RecordAttributes, encoded: bytes, salt: bytes
) -> bytes:
    """The seam the test-vector generator uses to fix the salt and the plaintext bytes."""
    commitment = derive(
        record_key=record_key,
        salt=salt,
        attributes=attributes,
        label=SEALED_COMMITMENT_LABEL,
        length=COMMITMENT_SIZE,
    )
    key = derive(
        record_key=record_key,
        salt=salt,
        attributes=attributes,
        label=SEALED_METADATA_LABEL,
        length=32,
    )
    head = bytes((FORMAT_VERSION, SUITE)) + salt + commitment
    return head + encrypt_metadata(key, encoded)


def open_metadata(*, record_key: bytes, attributes: RecordAttributes, sealed: bytes) -> Metadata:
    """Check and decrypt sealed metadata made by seal_metadata for these attributes."""
    if len(sealed) < 2:
        raise FormatError("sealed metadata is truncated")
    if sealed[0] != FORMAT_VERSION:
        raise UnsupportedVersionError(f"format version {sealed[0]} is not supported")
    if sealed[1] != SUITE:
        raise UnsupportedVersionError(f"suite {sealed[1]} is not supported")
    if not MIN_SEALED_METADATA_SIZE <= len(sealed) <= MAX_SEALED_METADATA_SIZE:
        raise FormatError(
            f"sealed metadata is {len(sealed)} bytes, outside "
            f"{MIN_SEALED_METADATA_SIZE}..{MAX_SEALED_METADATA_SIZE}"
        )
    salt = sealed[2 : 2 + SALT_SIZE]
    commitment = sealed[2 + SALT_SIZE : 2 + SALT_SIZE + COMMITMENT_SIZE]
    expected = derive(
        record_key=record_key,
        salt=salt,
        attributes=attributes,
        label=SEALED_COMMITMENT_LABEL,
        length=COMMITMENT_SIZE,
    )
    if not hmac.compare_digest(commitment, expected):
        raise IntegrityError() from ValueError("sealed metadata key commitment does not match")
    key = derive(
        record_key=record_key,
        salt=salt,
        attributes=attributes,
        label=SEALED_METADATA_LABEL,
        length=32,
    )
    return decrypt_metadata(key, sealed[2 + SALT_SIZE + COMMITMENT_SIZE :])
