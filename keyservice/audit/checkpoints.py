"""Signed checkpoints of the audit chain (docs/AUDIT.md).

A checkpoint is the service's Ed25519 signature over ``"carevault/audit-checkpoint/v1" ‖
seq ‖ hash`` of one entry. Verification checks every checkpoint's signature and that the
chain still holds that entry with that hash, so cutting entries off the end of the chain
(which leaves every remaining link intact) is caught by the newest checkpoint.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, insert, select

from keyservice.db.tables import audit_checkpoints, audit_head

LABEL = b"carevault/audit-checkpoint/v1"


def checkpoint_message(seq: int, digest: str) -> bytes:
    return LABEL + b"\x00" + str(seq).encode("ascii") + b"\x00" + digest.encode("ascii")


def write_checkpoint(
    connection: Connection, key: Ed25519PrivateKey, *, now: datetime
) -> tuple[int, str] | None:
    """Sign the current head of the chain; None when the chain is empty."""
    head = connection.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    ).one()
    if head.seq == 0:
        return None
    sign_checkpoint(connection, key, seq=head.seq, digest=head.hash, now=now)
    return head.seq, head.hash


def sign_checkpoint(
    connection: Connection, key: Ed25519PrivateKey, *, seq: int, digest: str, now: datetime
) -> None:
    """Store a checkpoint of entry ``seq`` (whose hash is ``digest``) unless one exists."""
    exists = connection.execute(
        select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == seq)
    ).first()
    if exists is None:
        connection.execute(
            insert(audit_checkpoints).values(
                seq=seq,
                hash=digest,
                at=now,
                signature=key.sign(checkpoint_message(seq, digest)),
            )
        )


def signature_valid(public: Ed25519PublicKey, *, seq: int, digest: str, signature: bytes) -> bool:
    try:
        public.verify(signature, checkpoint_message(seq, digest))
    except Exception:
        return False
    return True
