"""Recompute the audit chain and name the first broken entry (``audit verify``).

Every entry's MAC is recomputed with the audit MAC key; every checkpoint in the database is
checked, and so are the checkpoints in the blob store that matter: the newest one the chain
reaches (its hash pins every entry before it) and any that name an entry the chain no longer
holds (cut off the end). The report says how many entries lie after the newest checkpoint
that verified: those are the ones a truncation could still remove unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select

from keyservice.audit import offsite
from keyservice.audit.chain import GENESIS_HASH, stored_entry_valid
from keyservice.audit.checkpoints import Checkpoint, stored_checkpoints
from keyservice.audit.mac import AuditMac
from keyservice.db.tables import audit_entries, audit_head
from vault.storage import BlobStore

IN_DATABASE = "database"
IN_STORE = "blob store"


@dataclass(frozen=True)
class ChainReport:
    """``ok`` or the first broken sequence number and what is wrong there; and the newest
    checkpoint that verified (``checkpoint_seq``) and where it was found."""

    ok: bool
    entries: int
    broken_seq: int | None = None
    problem: str | None = None
    checkpoint_seq: int | None = None
    checkpoint_in: str | None = None

    @property
    def after_checkpoint(self) -> int:
        """How many entries lie after the newest verified checkpoint (all, if none)."""
        return self.entries - (self.checkpoint_seq or 0)


def verify_chain(
    connection: Connection,
    public: Ed25519PublicKey,
    *,
    mac: AuditMac,
    store: BlobStore | None,
) -> ChainReport:
    """Check the chain, its checkpoints in the database and, unless ``store`` is None, the
    checkpoints in ``store``. ``connection`` should read one snapshot (``reading``, and
    REPEATABLE READ on PostgreSQL), so that a running service's appends do not look like
    damage.

    The store is listed before the database is read: a checkpoint a running service writes
    meanwhile then never names an entry this reading cannot see. Raises the store's errors
    if it cannot be listed or read.
    """
    stored_names = offsite.names(store, mac) if store is not None else set()
    checks = [(checkpoint, IN_DATABASE) for checkpoint in stored_checkpoints(connection)]
    wanted = {checkpoint.seq for checkpoint, _ in checks}
    hashes: dict[int, str] = {}
    in_store: dict[int, str] = {}
    prev_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    for row in connection.execute(select(audit_entries).order_by(audit_entries.c.seq)):
        count += 1
        if row.seq != expected_seq:
            return ChainReport(
                False, count, expected_seq, f"entry {expected_seq} is missing (next is {row.seq})"
            )
        if row.prev_hash != prev_hash:
            return ChainReport(False, count, row.seq, "does not link to the entry before it")
        if not stored_entry_valid(mac, row):
            return ChainReport(
                False,
                count,
                row.seq,
                "its content does not match its MAC (altered, or written under another audit "
                "MAC key or before entries were keyed)",
            )
        name = mac.checkpoint_name(row.seq) if stored_names else None
        if name in stored_names:
            in_store[row.seq] = name
        if name in stored_names or row.seq in wanted:
            hashes[row.seq] = row.hash
        prev_hash = row.hash
        expected_seq += 1
    last = expected_seq - 1
    # The newest checkpoint the chain reaches in the store, and every one naming no entry of it.
    to_read = stored_names - set(in_store.values())
    if in_store:
        to_read.add(in_store[max(in_store)])
    if store is not None:
        try:
            checks += [(checkpoint, IN_STORE) for checkpoint in _read(store, mac, to_read)]
        except ValueError as exc:
            return ChainReport(False, count, None, str(exc))
    checks.sort(key=lambda check: check[0].seq)
    for checkpoint, found_in in checks:
        broken = _checkpoint_problem(checkpoint, found_in, public, last=last, hashes=hashes)
        if broken is not None:
            return ChainReport(False, count, *broken)
    head = connection.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if head.seq != last or (last > 0 and head.hash != prev_hash):
        return ChainReport(
            False,
            count,
            min(head.seq, last) + 1,
            f"the chain head says {head.seq} entries, the log holds {last}",
        )
    if not checks:
        return ChainReport(True, count)
    newest = checks[-1][0].seq
    found = {found_in for checkpoint, found_in in checks if checkpoint.seq == newest}
    return ChainReport(True, count, checkpoint_seq=newest, checkpoint_in=_where(found))


def _read(store: BlobStore, mac: AuditMac, names: set[str]) -> list[Checkpoint]:
    """The checkpoints stored as ``names``; ValueError naming an object that is not a
    checkpoint, or not the one its name stands for."""
    read = []
    for name in sorted(names):
        try:
            checkpoint = offsite.get(store, name)
        except ValueError:
            raise ValueError(f"object {name} in the blob store is not a checkpoint") from None
        if mac.checkpoint_name(checkpoint.seq) != name:
            raise ValueError(f"object {name} in the blob store is not where its checkpoint goes")
        read.append(checkpoint)
    return read


def _checkpoint_problem(
    checkpoint: Checkpoint,
    found_in: str,
    public: Ed25519PublicKey,
    *,
    last: int,
    hashes: dict[int, str],
) -> tuple[int, str] | None:
    """The entry to name and what is wrong, if ``checkpoint`` does not hold for the chain."""
    if not checkpoint.signature_valid(public):
        return checkpoint.seq, f"its checkpoint in the {found_in} has an invalid signature"
    if checkpoint.seq > last:
        return (
            last + 1,
            f"entries after {last} are missing: a checkpoint in the {found_in} names entry "
            f"{checkpoint.seq}",
        )
    if hashes.get(checkpoint.seq) != checkpoint.hash:
        return checkpoint.seq, f"differs from its signed checkpoint in the {found_in}"
    return None


def _where(found: set[str]) -> str:
    if found == {IN_STORE}:
        return IN_STORE
    if found == {IN_DATABASE}:
        return f"{IN_DATABASE} only"
    return f"{IN_STORE} and {IN_DATABASE}"
