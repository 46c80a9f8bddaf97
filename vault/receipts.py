"""Receipts: what an outside recipient's device signs to acknowledge a share (issue 14;
docs/decisions/0015-receipts.md). The SDK signs with it and the key service verifies with it,
so both sides build the same bytes from one definition.

    statement = "carevault-receipt-v1\\n" || canonical JSON of
                {"device_id": …, "items": [{"ciphertext_sha256": …, "record_id": …,
                 "version": …}, …], "principal_id": …, "share_id": …}
    signature = Ed25519(device signing key, statement)

Canonical JSON: keys sorted, no spaces, ASCII only; items sorted by record id, then
version, whatever order they were given in; a digest is the version's committed ciphertext
digest (the release's ``ciphertext_digest``: BLAKE3, or SHA-256 for a version committed
before BLAKE3; the version records which, decision 0022) as the API writes binary
(base64url without padding). The item's key keeps its first name, ``ciphertext_sha256``, so
receipts signed before stay valid. The prefix separates these
signatures from every other signature the device key makes (an RFC 9421 signature base never
starts with it), so a receipt cannot pass for a signed request, nor the reverse.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RECEIPT_PREFIX = b"carevault-receipt-v1\n"
SHA256_SIZE = 32
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
_ID = re.compile(r"[0-9a-f]{32}")

__all__ = [
    "RECEIPT_PREFIX",
    "ReceivedItem",
    "receipt_statement",
    "receipt_valid",
    "sign_receipt",
]


@dataclass(frozen=True)
class ReceivedItem:
    """One record version received through a share, with its committed ciphertext digest
    (in the version's algorithm; the field keeps its first name)."""

    record_id: str
    version: int
    ciphertext_sha256: bytes

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.record_id):
            raise ValueError("record_id must be 32 lowercase hex characters")
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ValueError("version must be an integer")
        if self.version < 1:
            raise ValueError("version must be at least 1")
        if len(self.ciphertext_sha256) != SHA256_SIZE:
            raise ValueError("ciphertext_sha256 must be a 32-byte ciphertext digest")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def receipt_statement(
    *, share_id: str, principal_id: str, device_id: str, items: Iterable[ReceivedItem]
) -> bytes:
    """The exact bytes a recipient's device signs for ``share_id``. Raises ``ValueError``
    for an id that is not one, or a record version listed twice."""
    for name, value in (
        ("share_id", share_id),
        ("principal_id", principal_id),
        ("device_id", device_id),
    ):
        if not _ID.fullmatch(value):
            raise ValueError(f"{name} must be 32 lowercase hex characters")
    ordered = sorted(items, key=lambda item: (item.record_id, item.version))
    seen = {(item.record_id, item.version) for item in ordered}
    if len(seen) != len(ordered):
        raise ValueError("a record version is listed twice")
    body = {
        "device_id": device_id,
        "items": [
            {
                "ciphertext_sha256": _b64(item.ciphertext_sha256),
                "record_id": item.record_id,
                "version": item.version,
            }
            for item in ordered
        ],
        "principal_id": principal_id,
        "share_id": share_id,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return RECEIPT_PREFIX + text.encode("ascii")


def sign_receipt(
    signing_key: Ed25519PrivateKey,
    *,
    share_id: str,
    principal_id: str,
    device_id: str,
    items: Iterable[ReceivedItem],
) -> bytes:
    """The device's Ed25519 signature of the receipt statement (64 bytes)."""
    statement = receipt_statement(
        share_id=share_id, principal_id=principal_id, device_id=device_id, items=items
    )
    return signing_key.sign(statement)


def receipt_valid(signing_public: bytes, statement: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``statement`` by the device whose raw
    public signing key is ``signing_public``; every failure is the same False."""
    if len(signing_public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    if not statement.startswith(RECEIPT_PREFIX):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(signing_public).verify(signature, statement)
    except (InvalidSignature, ValueError):
        return False
    return True
