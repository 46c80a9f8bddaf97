"""The chain's head, checked and checkpointed now: at start, by the timer, by ``audit checkpoint``.

A checkpoint vouches for an entry the service wrote: the head is signed only once the entry it
names is found to carry its MAC, so a head that someone set in the database (a sequence number
past the end, a hash of their own) is refused, not signed.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from keyservice.audit import offsite
from keyservice.audit.chain import stored_entry_valid
from keyservice.audit.checkpoints import Checkpoint, store_checkpoint
from keyservice.audit.mac import AuditMac
from keyservice.db.engine import reading
from keyservice.db.tables import audit_entries, audit_head
from keyservice.errors import AuditChainError
from vault.storage import BlobStore

_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)


def authentic_head(engine: Engine, mac: AuditMac) -> tuple[int, str] | None:
    """``checked_head`` in a read-only transaction of its own."""
    with engine.connect() as connection, reading(connection):
        return checked_head(connection, mac)


def checked_head(connection: Connection, mac: AuditMac) -> tuple[int, str] | None:
    """The head's ``(seq, hash)`` once its entry is found to carry its MAC; None when empty.

    Raises AuditChainError when the head names no entry, or one whose MAC does not verify:
    the key file is not the one the chain was written with, the database predates keyed
    entries, or someone changed the head or the entry.
    """
    head = connection.execute(_HEAD).one()
    if head.seq == 0:
        return None
    entry = connection.execute(
        select(audit_entries).where(audit_entries.c.seq == head.seq)
    ).one_or_none()
    if entry is None or entry.hash != head.hash or not stored_entry_valid(mac, entry):
        raise AuditChainError(
            f"the audit chain's newest entry (seq {head.seq}) does not verify under the audit "
            "MAC key (CAREVAULT_AUDIT_MAC_KEY_FILE). If that key file was lost or replaced, "
            "restore it from backup; if this database was written before audit entries were "
            "keyed (docs/decisions/0009), start from a new data directory; otherwise run "
            "`carevault-keyservice audit verify` to find what was changed."
        )
    return head.seq, head.hash


def checkpoint_head(
    engine: Engine,
    *,
    mac: AuditMac,
    key: Ed25519PrivateKey,
    store: BlobStore,
    now: datetime,
    unless: int | None = None,
) -> Checkpoint | None:
    """Sign the head, write the checkpoint to ``store`` and then to the database; return it.

    None when the chain is empty or its head is still entry ``unless`` (the caller's last
    checkpoint). Raises AuditChainError if the head does not verify (nothing is signed), and
    the store's or the database's errors if a write fails.
    """
    head = authentic_head(engine, mac)
    if head is None or head[0] == unless:
        return None
    checkpoint = Checkpoint.sign(key, seq=head[0], digest=head[1])
    # The copy the database's writers cannot reach goes first.
    offsite.put(store, mac, checkpoint)
    # Another instance may insert the same row between this one's look and its insert.
    with suppress(IntegrityError), engine.begin() as connection:
        store_checkpoint(connection, checkpoint, now=now)
    return checkpoint
