"""Shred certificates: what the key service signs when it has crypto-shredded a record or a
whole child (issue 15, part 6; docs/decisions/0019-retention-and-shredding.md). The key
service builds the statement with it and the SDK verifies it, offline, with it.

    statement = "carevault-shred-certificate-v1\\n" || canonical JSON of
                {"approved_at": …, "approved_by": …, "child_id": … | null,
                 "child_ids": [...], "child_key_versions_destroyed": [...],
                 "objects_deleted": n, "reason": …, "record_id": … | null,
                 "records_shredded": [...], "requested_at": …, "requested_by": …,
                 "shred_id": …, "shredded_at": …, "target": "record" | "child",
                 "wraps_destroyed": n}
    signature = Ed25519(the key service's audit signing key, statement)

Canonical JSON: keys sorted, no spaces, ASCII only; times ISO 8601 in UTC. The prefix
separates these signatures from the service's audit checkpoints
("carevault/audit-checkpoint/v1" ...), so neither passes for the other. Verify against the
service's signing key as you pinned it (``GET /v1/service/signing-key``, kept off the
service), not against a key the certificate came with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CERTIFICATE_PREFIX = b"carevault-shred-certificate-v1\n"
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32

__all__ = [
    "CERTIFICATE_PREFIX",
    "ShredCertificate",
    "certificate_statement",
    "certificate_valid",
    "read_certificate",
    "sign_certificate",
]

_FIELDS = frozenset(
    {
        "approved_at",
        "approved_by",
        "child_id",
        "child_ids",
        "child_key_versions_destroyed",
        "objects_deleted",
        "reason",
        "record_id",
        "records_shredded",
        "requested_at",
        "requested_by",
        "shred_id",
        "shredded_at",
        "target",
        "wraps_destroyed",
    }
)


@dataclass(frozen=True)
class ShredCertificate:
    """What a verified certificate says (times as the ISO strings signed)."""

    shred_id: str
    target: str
    record_id: str | None
    child_id: str | None
    child_ids: tuple[str, ...]
    records_shredded: tuple[str, ...]
    child_key_versions_destroyed: tuple[int, ...]
    wraps_destroyed: int
    objects_deleted: int
    reason: str
    requested_by: str
    requested_at: str
    approved_by: str
    approved_at: str
    shredded_at: str


def certificate_statement(fields: dict[str, Any]) -> bytes:
    """The exact bytes the service signs for ``fields`` (every field named above)."""
    if set(fields) != _FIELDS:
        raise ValueError("a shred certificate has exactly its named fields")
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return CERTIFICATE_PREFIX + text.encode("ascii")


def sign_certificate(key: Ed25519PrivateKey, statement: bytes) -> bytes:
    if not statement.startswith(CERTIFICATE_PREFIX):
        raise ValueError("not a shred certificate statement")
    return key.sign(statement)


def certificate_valid(service_public: bytes, statement: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the service's signature of ``statement``, a shred certificate;
    every failure is the same False."""
    if len(service_public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    if not statement.startswith(CERTIFICATE_PREFIX):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(service_public).verify(signature, statement)
    except (InvalidSignature, ValueError):
        return False
    return True


def read_certificate(service_public: bytes, statement: bytes, signature: bytes) -> ShredCertificate:
    """The certificate's content, once its signature verifies; ``ValueError`` otherwise."""
    if not certificate_valid(service_public, statement, signature):
        raise ValueError("the shred certificate does not verify with this service key")
    body = json.loads(statement[len(CERTIFICATE_PREFIX) :].decode("ascii"))
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise ValueError("the shred certificate's fields are not the expected ones")
    return ShredCertificate(
        shred_id=str(body["shred_id"]),
        target=str(body["target"]),
        record_id=body["record_id"],
        child_id=body["child_id"],
        child_ids=tuple(body["child_ids"]),
        records_shredded=tuple(body["records_shredded"]),
        child_key_versions_destroyed=tuple(body["child_key_versions_destroyed"]),
        wraps_destroyed=int(body["wraps_destroyed"]),
        objects_deleted=int(body["objects_deleted"]),
        reason=str(body["reason"]),
        requested_by=str(body["requested_by"]),
        requested_at=str(body["requested_at"]),
        approved_by=str(body["approved_by"]),
        approved_at=str(body["approved_at"]),
        shredded_at=str(body["shredded_at"]),
    )
