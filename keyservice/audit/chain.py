"""Appending to the hash-chained audit log (docs/AUDIT.md).

    hash(entry) = HMAC-SHA-256(entry key, canonical JSON of {seq, at, actor_principal,
                               actor_device, action, outcome, detail, prev_hash})

The entry key comes from the audit MAC key file (keyservice.audit.mac), which the database
does not hold: someone who can only write the database cannot make an entry verify.

Appends run inside the caller's transaction, so an entry commits with what it records or not
at all. The one-row ``audit_head`` is locked first (``SELECT … FOR UPDATE`` on PostgreSQL;
SQLite transactions already start with ``BEGIN IMMEDIATE``), which serialises appends across
every instance sharing the database. Any database failure while appending becomes
``AuditUnavailableError``: the request fails closed with 503 and nothing is released.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from keyservice.audit.checkpoints import sign_checkpoint
from keyservice.audit.mac import AuditMac
from keyservice.db.tables import audit_entries, audit_head
from keyservice.errors import AuditUnavailableError

GENESIS_HASH = "0" * 64

# Built once: constructing a statement and its cache key cost more than running it.
_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_INSERT = insert(audit_entries)
_MOVE_HEAD = update(audit_head).where(audit_head.c.id == 1)


@dataclass(frozen=True)
class AuditEvent:
    """One thing to record. ``detail`` holds opaque ids, codes and counts only."""

    action: str
    outcome: str
    actor_principal: str | None = None
    actor_device: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value``: sorted keys, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def format_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    mac: AuditMac,
    seq: int,
    at: datetime,
    actor_principal: str | None,
    actor_device: str | None,
    action: str,
    outcome: str,
    detail: str,
    prev_hash: str,
) -> str:
    """The chain hash (MAC) of one entry; ``detail`` is the stored canonical JSON text."""
    encoded = canonical_json(
        {
            "seq": seq,
            "at": format_time(at),
            "actor_principal": actor_principal,
            "actor_device": actor_device,
            "action": action,
            "outcome": outcome,
            "detail": detail,
            "prev_hash": prev_hash,
        }
    )
    return mac.entry(encoded.encode("ascii"))


def stored_entry_valid(mac: AuditMac, row: Any) -> bool:
    """Whether a stored entry (a row of ``audit_entries``) carries its own MAC as ``hash``."""
    recomputed = entry_hash(
        mac=mac,
        seq=row.seq,
        at=row.at,
        actor_principal=row.actor_principal,
        actor_device=row.actor_device,
        action=row.action,
        outcome=row.outcome,
        detail=row.detail,
        prev_hash=row.prev_hash,
    )
    return hmac.compare_digest(recomputed, row.hash)


@dataclass(frozen=True)
class Checkpointer:
    """Sign a checkpoint in the same transaction as every ``every``-th entry."""

    key: Ed25519PrivateKey
    every: int


def append(
    connection: Connection,
    event: AuditEvent,
    *,
    mac: AuditMac,
    now: datetime,
    checkpointer: Checkpointer | None = None,
) -> int:
    """Append ``event`` to the chain in the current transaction; return its sequence number."""
    return append_many(connection, [event], mac=mac, now=now, checkpointer=checkpointer)[0]


def lock_head(connection: Connection) -> tuple[int, str]:
    """Lock the chain's head in the current transaction; return its ``(seq, hash)``.

    ``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds the
    database's one write lock.
    """
    try:
        locked = connection.dialect.name == "postgresql"
        head = connection.execute(_HEAD_FOR_UPDATE if locked else _HEAD).one()
    except SQLAlchemyError as exc:
        raise AuditUnavailableError() from exc
    return head.seq, head.hash


def append_many(
    connection: Connection,
    events: Sequence[AuditEvent],
    *,
    mac: AuditMac,
    now: datetime,
    checkpointer: Checkpointer | None = None,
    head: tuple[int, str] | None = None,
) -> list[int]:
    """Append ``events`` in order in the current transaction; return their sequence numbers.

    One head lock, one insert and one head update for the lot (group commit, decision 0005);
    each entry links to the one before it exactly as if appended alone. ``head`` is what
    ``lock_head`` returned, if the caller locked it earlier in this transaction.
    """
    seq, prev_hash = head if head is not None else lock_head(connection)
    try:
        rows: list[dict[str, Any]] = []
        for event in events:
            seq += 1
            detail = canonical_json(dict(event.detail))
            digest = entry_hash(
                mac=mac,
                seq=seq,
                at=now,
                actor_principal=event.actor_principal,
                actor_device=event.actor_device,
                action=event.action,
                outcome=event.outcome,
                detail=detail,
                prev_hash=prev_hash,
            )
            rows.append(
                {
                    "seq": seq,
                    "at": now,
                    "actor_principal": event.actor_principal,
                    "actor_device": event.actor_device,
                    "action": event.action,
                    "outcome": event.outcome,
                    "detail": detail,
                    "prev_hash": prev_hash,
                    "hash": digest,
                }
            )
            prev_hash = digest
        if not rows:
            return []
        connection.execute(_INSERT, rows)
        connection.execute(_MOVE_HEAD, {"seq": seq, "hash": prev_hash})
        if checkpointer is not None and checkpointer.every > 0:
            for row in rows:
                if row["seq"] % checkpointer.every == 0:
                    sign_checkpoint(
                        connection, checkpointer.key, seq=row["seq"], digest=row["hash"], now=now
                    )
    except SQLAlchemyError as exc:
        raise AuditUnavailableError() from exc
    return [row["seq"] for row in rows]
