"""Deciding, unwrapping and sealing a key release: the catalog side of ``POST /v1/keys/release``.

``decide_and_seal`` loads a whole batch in a fixed number of queries (versions, children,
relationships, wrapped keys: keyservice/catalog/release_reads.py), decides each record with
the policy once, unwraps the granted keys, seals them all to the caller's device under one
key agreement, and returns a ``Release``: what the answer and the audit entry need, and no
plaintext key. An item may name no version: it is the record's latest committed version,
decided and audited like any other. Nothing is written here; the caller commits the
release's entry, disclosure rows and nonce in the audit group before any key leaves; the
exceptions are a release to an outside recipient through a capped share, whose count is
spent first in its own transaction (keyservice/catalog/share_caps.py), and the first
release through a share, which sets its ``opened_at`` in one more
(keyservice/catalog/share_receipts.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from keyservice.audit.chain import AuditEvent
from keyservice.audit.group import IndexRows
from keyservice.caller import Caller
from keyservice.catalog.child_keys import ChildKeyCache
from keyservice.catalog.facts import read_rows
from keyservice.catalog.release_reads import (
    Asked,
    Batch,
    Pair,
    VersionRow,
    load_batch,
    load_wraps,
)
from keyservice.catalog.share_caps import spend_downloads
from keyservice.catalog.share_facts import RecipientShares
from keyservice.catalog.share_receipts import mark_opened
from keyservice.db.engine import reading
from keyservice.db.tables import disclosures
from keyservice.errors import KeyUnwrapError
from keyservice.keys.hierarchy import RecordKeyUnwrapper
from keyservice.policy import Basis
from vault.format import RecordAttributes
from vault.sealing import seal_batch
from vault.signing import sealing_context

__all__ = ["Asked", "Pair", "Release", "VersionRow", "audit_detail", "decide_and_seal"]


@dataclass(frozen=True)
class Release:
    """A release decided and sealed, waiting for its audit entry to be durable. No field
    holds a plaintext key.

    An item asked is granted if it resolves to a version (``resolved``) whose key was sealed
    (``sealed``); it is denied otherwise, whatever the reason. ``versions`` holds the
    catalog row of each version resolved, and ``children`` its record's child ids,
    ascending. Mappings, not an object per item: building those cost a 1,000-item release a
    millisecond.
    """

    resolved: Mapping[Asked, Pair]
    sealed: Mapping[Pair, bytes]
    versions: Mapping[Pair, VersionRow]
    children: Mapping[str, list[str]]
    ephemeral_public: bytes
    event: AuditEvent
    disclosures: IndexRows


def decide_and_seal(
    db: Connection,
    *,
    caller: Caller,
    asked: Sequence[Asked],
    child_keys: ChildKeyCache,
    now: datetime,
    through_share: str | None = None,
) -> Release:
    """Decide, unwrap and seal the ``asked`` items for ``caller`` (at most one policy
    decision per distinct record; duplicates asked are decided and sealed once).

    An outside recipient's release goes through its live shares listing each version;
    ``through_share`` restricts it to that one share (an item it does not list is denied).
    Each item granted names the share it went through, in the audit entry and the
    disclosure rows, and only those shares are counted and opened."""
    # Everything reads one snapshot and holds no write lock (docs/AUDIT.md: only the audit
    # entry, the disclosure rows and the nonce are written, by the audit group).
    with reading(db):
        batch = load_batch(db, asked)
        reads = read_rows(
            db, caller, batch.rows.values(), batch.children, now=now, shredded=batch.shredded
        )
        decisions = reads.decisions
        bases = {
            pair: decisions[pair[0]].basis for pair in batch.rows if decisions[pair[0]].allowed
        }
        # An outside recipient's shares were loaded to decide (keyservice/catalog/facts.py):
        # not asked for again.
        recipient = None
        if caller.kind == "external" and bases:
            recipient = reads.recipient or RecipientShares((), {})
        live = recipient.live if recipient is not None else {}
        if recipient is not None and through_share is not None:
            live = {
                pair: named
                for pair, listing in live.items()
                if (named := tuple(s for s in listing if s[0] == through_share))
            }
        if recipient is not None:
            # A share is frozen to the versions it was made with (decision 0013).
            bases = {pair: basis for pair, basis in bases.items() if pair in live}
        keys = _unwrap(db, child_keys, batch, bases)
    through: dict[Pair, str] = {}
    if recipient is not None and keys:
        through = spend_downloads(
            db, device_id=caller.device_id, live=live, pairs=list(keys), now=now
        )
        keys = {pair: key for pair, key in keys.items() if pair in through}
        if recipient.unopened:
            # The first release through a share opens it (once: later releases skip this).
            mark_opened(db, {through[pair] for pair in keys} & recipient.unopened, now=now)
    pairs = list(dict.fromkeys(batch.resolved.values()))
    granted = [pair for pair in pairs if pair in keys]
    sealed = seal_batch(
        recipient_public=caller.receiving_key,
        context=sealing_context(caller.device_id, caller.nonce),
        items=[keys[pair] for pair in granted],
    )
    event = AuditEvent(
        action="keys.release",
        outcome="allow" if granted else "deny",
        actor_principal=caller.principal_id,
        actor_device=caller.device_id,
        detail=audit_detail(
            pairs,
            bases,
            granted=keys.keys(),
            unknown=[item for item in dict.fromkeys(asked) if item not in batch.resolved],
            through=through,
        ),
    )
    # A release through a share names it (the one it was counted on), so the disclosure log
    # can tell its purpose and whether the child's guardians see it. A row per child whose
    # rights released it: not for a shredded child (docs/POLICY.md).
    shredded = batch.shredded
    rows = [
        (child_id, rid, version, bases[(rid, version)].value, through.get((rid, version)))
        for rid, version in granted
        for child_id in batch.children[rid]
        if child_id not in shredded
    ]
    return Release(
        resolved=batch.resolved,
        sealed=dict(zip(granted, sealed.sealed, strict=True)),
        versions=batch.rows,
        children=batch.children,
        ephemeral_public=sealed.ephemeral_public,
        event=event,
        disclosures=IndexRows(
            disclosures,
            columns=("child_id", "record_id", "version", "basis", "share_id"),
            rows=rows,
            shared={"principal_id": caller.principal_id, "at": now},
        ),
    )


def audit_detail(
    pairs: Iterable[Pair],
    bases: Mapping[Pair, Basis],
    *,
    granted: Collection[Pair],
    unknown: Sequence[Asked],
    through: Mapping[Pair, str] | None = None,
) -> dict[str, Any]:
    """The release entry's detail (docs/AUDIT.md): every committed record version decided,
    with its decision and basis (an item without a version as the version it resolved to),
    and an item granted through a share that share's id;
    the items that name none, ids any caller can make up by the thousand, only as their
    count and a digest, so they cannot grow the entry."""
    shared = through or {}

    def shared_id(pair: Pair) -> list[str]:
        return [shared[pair]] if pair in shared else []

    items: list[list[str | int]] = [
        [rid, version, "granted", bases[(rid, version)].value, *shared_id((rid, version))]
        if (rid, version) in granted
        else [rid, version, "denied", Basis.NONE.value]
        for rid, version in pairs
    ]
    if not unknown:
        return {"items": items}
    # Sorted by id, then version; an item that named no version (null) first.
    listed = sorted(unknown, key=lambda item: (item[0], -1 if item[1] is None else item[1]))
    text = json.dumps(listed, separators=(",", ":")).encode("ascii")
    return {
        "items": items,
        "unknown": {"count": len(unknown), "sha256": hashlib.sha256(text).hexdigest()},
    }


def _unwrap(
    db: Connection, child_keys: ChildKeyCache, batch: Batch, bases: Mapping[Pair, Basis]
) -> dict[Pair, tuple[bytes, bytes]]:
    """Unwrap the granted record keys: one query for the wraps, cached child keys. Each
    key comes with its record's canonical attributes, the associated data it is sealed
    with.

    Each record is opened with its first child (ascending id) whose key version still exists
    (decision 0002); an item whose wraps are all unusable is denied like any other. Done
    per request, not per item: the attributes are built and checked once per set of
    children and category (each record's are those with its id and version), and a cipher
    is made once per child key version.
    """
    if not bases:
        return {}
    wraps = load_wraps(db, bases)
    unwrapped = child_keys.get(
        db, {(child, ver) for found in wraps.values() for child, ver, _ in found}
    )
    unwrappers = {found: RecordKeyUnwrapper(child_key) for found, child_key in unwrapped.items()}
    # By (category, *child ids).
    templates: dict[tuple[str, ...], RecordAttributes] = {}
    children, rows = batch.children, batch.rows
    keys = {}
    for pair in bases:
        rid, version = pair
        category, ids = rows[pair].category, children[rid]
        template = templates.get((category, *ids))
        if template is None:
            template = templates[(category, *ids)] = RecordAttributes.from_hex(
                record_id=rid, version=version, child_ids=ids, category=category
            )
        aad = template.canonical_for(bytes.fromhex(rid), version)
        for child_id, key_version, wrapped in wraps.get(pair, []):
            unwrapper = unwrappers.get((child_id, key_version))
            if unwrapper is None:
                continue
            try:
                keys[pair] = (aad, unwrapper.unwrap(aad=aad, wrapped=wrapped))
            except KeyUnwrapError:
                continue
            break
    return keys
