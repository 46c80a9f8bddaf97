"""The key schedule (docs/FORMAT.md, "Key schedule").

Every key is derived from the record key with HKDF-SHA-256, salted with the salt of the
structure it protects and bound to the record's canonical attributes through HKDF's info, so
a key derived for one record, version, set of children or category is useless for another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.format.attributes import RecordAttributes
from vault.format.errors import FormatError

RECORD_KEY_SIZE = 32
SALT_SIZE = 32
COMMITMENT_SIZE = 32
NONCE_PREFIX_SIZE = 7
SUITE = 1

COMMITMENT_LABEL = b"carevault/v1/commitment"
HEADER_MAC_LABEL = b"carevault/v1/header-mac"
HEADER_METADATA_LABEL = b"carevault/v1/header-metadata"
PAYLOAD_LABEL = b"carevault/v1/payload"
SEALED_COMMITMENT_LABEL = b"carevault/v1/sealed-commitment"
SEALED_METADATA_LABEL = b"carevault/v1/sealed-metadata"


def check_record_key(record_key: bytes) -> None:
    """Refuse a record key of the wrong type or size before anything is derived from it."""
    if not isinstance(record_key, bytes | bytearray) or len(record_key) != RECORD_KEY_SIZE:
        raise FormatError(f"a record key is {RECORD_KEY_SIZE} bytes")


def derive(
    *, record_key: bytes, salt: bytes, attributes: RecordAttributes, label: bytes, length: int
) -> bytes:
    """HKDF(ikm = record key, salt = salt, info = label || attributes)."""
    check_record_key(record_key)
    if len(salt) != SALT_SIZE:
        raise FormatError(f"a salt is {SALT_SIZE} bytes")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=bytes(salt),
        info=label + attributes.canonical(),
    )
    return hkdf.derive(bytes(record_key))


@dataclass(frozen=True)
class HeaderKeys:
    """The keys that protect one header. Never shown in a repr."""

    commitment: bytes = field(repr=False)
    mac_key: bytes = field(repr=False)
    metadata_key: bytes = field(repr=False)


def header_keys(*, record_key: bytes, salt: bytes, attributes: RecordAttributes) -> HeaderKeys:
    def one(label: bytes) -> bytes:
        return derive(
            record_key=record_key, salt=salt, attributes=attributes, label=label, length=32
        )

    return HeaderKeys(
        commitment=one(COMMITMENT_LABEL),
        mac_key=one(HEADER_MAC_LABEL),
        metadata_key=one(HEADER_METADATA_LABEL),
    )


@dataclass(frozen=True)
class PayloadKeys:
    """The payload's AES-256-GCM key and the nonce prefix of its chunks."""

    key: bytes = field(repr=False)
    nonce_prefix: bytes = field(repr=False)


def payload_keys(*, record_key: bytes, salt: bytes, attributes: RecordAttributes) -> PayloadKeys:
    okm = derive(
        record_key=record_key,
        salt=salt,
        attributes=attributes,
        label=PAYLOAD_LABEL,
        length=32 + NONCE_PREFIX_SIZE,
    )
    return PayloadKeys(key=okm[:32], nonce_prefix=okm[32:])
