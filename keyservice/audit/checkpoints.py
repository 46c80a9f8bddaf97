"""Signed checkpoints of the audit chain (docs/AUDIT.md).

A checkpoint is the service's Ed25519 signature over ``"carevault/audit-checkpoint/v1" ‖
seq ‖ hash`` of one entry. Verification checks every checkpoint's signature and that the
chain still holds that entry with that hash, so cutting entries off the end of the chain
(which leaves every remaining link intact) is caught by the newest checkpoint. The database
keeps a row per checkpoint (``audit_checkpoints``); the timed ones are also kept in the blob
store (``keyservice.audit.offsite``), where someone who can only write the database cannot
delete them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, insert, select

from keyservice.db.tables import audit_checkpoints

LABEL = b"carevault/audit-checkpoint/v1"


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement "entry ``seq`` has hash ``hash``"."""

    seq: int
    hash: str
    signature: bytes

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, *, seq: int, digest: str) -> Checkpoint:
        return cls(seq, digest, key.sign(checkpoint_message(seq, digest)))

    def signature_valid(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(self.signature, checkpoint_message(self.seq, self.hash))
        except InvalidSignature:
            return False
        return True


def checkpoint_message(seq: int, digest: str) -> bytes:
    return LABEL + b"\x00" + str(seq).encode("ascii") + b"\x00" + digest.encode("ascii")


def sign_checkpoint(
    connection: Connection, key: Ed25519PrivateKey, *, seq: int, digest: str, now: datetime
) -> None:
    """Store a checkpoint of entry ``seq`` (whose hash is ``digest``) unless one exists."""
    store_checkpoint(connection, Checkpoint.sign(key, seq=seq, digest=digest), now=now)


def store_checkpoint(connection: Connection, checkpoint: Checkpoint, *, now: datetime) -> None:
    """Insert ``checkpoint``'s row in the current transaction unless its entry has one.

    Two instances that checkpoint the same entry at once may both find none; the second
    insert then fails on the primary key, which its caller takes as done.
    """
    exists = connection.execute(
        select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == checkpoint.seq)
    ).first()
    if exists is None:
        connection.execute(
            insert(audit_checkpoints).values(
                seq=checkpoint.seq, hash=checkpoint.hash, at=now, signature=checkpoint.signature
            )
        )


def stored_checkpoints(connection: Connection) -> list[Checkpoint]:
    """Every checkpoint the database holds, oldest first."""
    return [
        Checkpoint(row.seq, row.hash, row.signature)
        for row in connection.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
    ]
