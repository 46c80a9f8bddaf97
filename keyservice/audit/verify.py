"""Recompute the audit chain and name the first broken entry (``audit verify``)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select

from keyservice.audit.chain import GENESIS_HASH, entry_hash
from keyservice.audit.checkpoints import signature_valid
from keyservice.db.tables import audit_checkpoints, audit_entries, audit_head


@dataclass(frozen=True)
class ChainReport:
    """``ok`` or the first broken sequence number and what is wrong there."""

    ok: bool
    entries: int
    broken_seq: int | None = None
    problem: str | None = None


def verify_chain(connection: Connection, public: Ed25519PublicKey) -> ChainReport:
    prev_hash = GENESIS_HASH
    expected_seq = 1
    hashes: dict[int, str] = {}
    count = 0
    for row in connection.execute(select(audit_entries).order_by(audit_entries.c.seq)):
        count += 1
        if row.seq != expected_seq:
            return ChainReport(
                False, count, expected_seq, f"entry {expected_seq} is missing (next is {row.seq})"
            )
        if row.prev_hash != prev_hash:
            return ChainReport(False, count, row.seq, "does not link to the entry before it")
        recomputed = entry_hash(
            seq=row.seq,
            at=row.at,
            actor_principal=row.actor_principal,
            actor_device=row.actor_device,
            action=row.action,
            outcome=row.outcome,
            detail=row.detail,
            prev_hash=row.prev_hash,
        )
        if recomputed != row.hash:
            return ChainReport(False, count, row.seq, "its content does not match its hash")
        hashes[row.seq] = row.hash
        prev_hash = row.hash
        expected_seq += 1
    last = expected_seq - 1
    for checkpoint in connection.execute(
        select(audit_checkpoints).order_by(audit_checkpoints.c.seq)
    ):
        if not signature_valid(
            public, seq=checkpoint.seq, digest=checkpoint.hash, signature=checkpoint.signature
        ):
            return ChainReport(False, count, checkpoint.seq, "checkpoint signature is invalid")
        if checkpoint.seq > last:
            return ChainReport(
                False,
                count,
                last + 1,
                f"entries after {last} are missing (checkpoint at {checkpoint.seq})",
            )
        if hashes.get(checkpoint.seq) != checkpoint.hash:
            return ChainReport(False, count, checkpoint.seq, "differs from its signed checkpoint")
    head = connection.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if head.seq != last or (last > 0 and head.hash != hashes[last]):
        return ChainReport(
            False,
            count,
            min(head.seq, last) + 1,
            f"the chain head says {head.seq} entries, the log holds {last}",
        )
    return ChainReport(True, count)
