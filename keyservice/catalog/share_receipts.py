"""Receipts of shares (issue 14, part 4; docs/decisions/0015-receipts.md): when a share was
first opened, the recipient's signed acknowledgement of what it received, a share's status
as its creator sees it, and the shares whose acknowledgement is overdue.

Status, first match wins:

    revoked       revoked (even after an acknowledgement: the share gives nothing now)
    acknowledged  the recipient signed for what it received (even after the share ended:
                  the receipt is what the creator waited for, and it stays true)
    expired       past its end, never acknowledged
    opened        something was released through it, not yet acknowledged
    sent          nothing released through it yet

A share is overdue when it has an acknowledgement deadline, the deadline has passed (the
deadline itself is still on time), it is not acknowledged and not revoked; an expired share
stays overdue, since its creator still has to chase the receipt.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy import Connection, select, update

from keyservice.caller import Caller
from keyservice.db.tables import devices, record_versions, share_items, shares
from keyservice.errors import DeniedError, InvalidChangeError
from vault.receipts import ReceivedItem, receipt_statement, receipt_valid

Status = Literal["sent", "opened", "acknowledged", "expired", "revoked"]
ACK = "share.ack"
NO_SUCH_SHARE = "no such share, or not one you may see"
# Listed in an error message at most this many of each kind of difference.
SHOWN = 10


class Dated(Protocol):
    """What a share's status is computed from (keyservice.catalog.shares.StoredShare)."""

    @property
    def valid_from(self) -> datetime: ...
    @property
    def valid_to(self) -> datetime: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def opened_at(self) -> datetime | None: ...
    @property
    def acknowledged_at(self) -> datetime | None: ...
    @property
    def ack_due(self) -> datetime | None: ...


def status_of(share: Dated, *, now: datetime) -> Status:
    """The share's status at ``now`` (the order is the module docstring's)."""
    if share.revoked_at is not None and share.revoked_at <= now:
        return "revoked"
    if share.acknowledged_at is not None:
        return "acknowledged"
    if not share.valid_from <= now < share.valid_to:
        return "expired"
    if share.opened_at is not None:
        return "opened"
    return "sent"


def is_overdue(share: Dated, *, now: datetime) -> bool:
    """Whether the share's acknowledgement is overdue at ``now``."""
    return (
        share.ack_due is not None
        and share.ack_due < now
        and share.acknowledged_at is None
        and (share.revoked_at is None or share.revoked_at > now)
    )


def check_ack_due(ack_due: datetime | None, *, valid_to: datetime, now: datetime) -> None:
    """An acknowledgement deadline must be after ``now`` and not after the share's end."""
    if ack_due is None:
        return
    if ack_due.utcoffset() is None:
        raise InvalidChangeError("times must carry a UTC offset")
    if ack_due <= now:
        raise InvalidChangeError("ack_due must be in the future")
    if ack_due > valid_to:
        raise InvalidChangeError("ack_due cannot be after the share ends (valid_to)")


def mark_opened(db: Connection, share_ids: Collection[str], *, now: datetime) -> None:
    """Set ``opened_at`` of the shares not opened yet, in a transaction of its own. Called
    only when a release granted something through a share still unopened when it was read,
    so once per share, not once per release; the condition keeps the first instant."""
    if not share_ids:
        return
    with db.begin():
        db.execute(
            update(shares)
            .where(shares.c.share_id.in_(sorted(share_ids)), shares.c.opened_at.is_(None))
            .values(opened_at=now)
        )


def overdue_ids(db: Connection, caller: Caller, *, now: datetime) -> list[str]:
    """The shares ``caller`` made whose acknowledgement is overdue at ``now``, the most
    overdue first."""
    return list(
        db.execute(
            select(shares.c.share_id)
            .where(
                shares.c.created_by == caller.principal_id,
                shares.c.ack_due.is_not(None),
                shares.c.ack_due < now,
                shares.c.acknowledged_at.is_(None),
                (shares.c.revoked_at.is_(None)) | (shares.c.revoked_at > now),
            )
            .order_by(shares.c.ack_due, shares.c.share_id)
        ).scalars()
    )


@dataclass(frozen=True)
class Acknowledgement:
    """A verified acknowledgement: what goes into its audit entry so that anyone can verify
    the signature again later, without the devices table."""

    share_id: str
    statement: bytes
    signature: bytes
    signing_key: bytes
    items: int


def _denied(
    share_id: str, reason: str, message: str, *, status: int, **more: object
) -> DeniedError:
    return DeniedError(
        message, action=ACK, detail={"share_id": share_id, "reason": reason, **more}, status=status
    )


def _named(pairs: Sequence[tuple[str, int]]) -> str:
    shown = ", ".join(f"{rid} v{version}" for rid, version in pairs[:SHOWN])
    return shown + (f" and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else "")


def acknowledge(
    db: Connection,
    caller: Caller,
    share_id: str,
    *,
    items: Sequence[ReceivedItem],
    signature: bytes,
    now: datetime,
) -> Acknowledgement:
    """Verify and store the recipient's signed acknowledgement of ``share_id`` in the
    current transaction, or raise ``DeniedError`` with nothing written: 404 (not the
    caller's share, or none: one answer), 409 (revoked, or acknowledged already), 422 (the
    signature does not verify with the calling device's key, or the items are not exactly
    the share's record versions with their committed digests)."""
    row = db.execute(
        select(shares.c.recipient_id, shares.c.revoked_at, shares.c.acknowledged_at).where(
            shares.c.share_id == share_id
        )
    ).first()
    if row is None or row.recipient_id != caller.principal_id:
        raise _denied(share_id, "unknown", NO_SUCH_SHARE, status=404)
    if row.revoked_at is not None and row.revoked_at <= now:
        raise _denied(
            share_id,
            "revoked",
            "the share was revoked: there is nothing to acknowledge",
            status=409,
        )
    if row.acknowledged_at is not None:
        raise _denied(share_id, "acknowledged", "the share is acknowledged already", status=409)
    try:
        statement = receipt_statement(
            share_id=share_id,
            principal_id=caller.principal_id,
            device_id=caller.device_id,
            items=items,
        )
    except ValueError as exc:
        raise _denied(
            share_id, "malformed", f"the receipt is malformed: {exc}", status=422
        ) from exc
    signing_key = db.execute(
        select(devices.c.signing_key).where(devices.c.device_id == caller.device_id)
    ).scalar_one()
    if not receipt_valid(signing_key, statement, signature):
        raise _denied(
            share_id,
            "bad_signature",
            "the receipt's signature does not verify with this device's signing key: sign "
            "the receipt statement (vault.receipts) with the device that sends it",
            status=422,
        )
    _check_items(db, share_id, items)
    acknowledged = db.execute(
        update(shares)
        .where(
            shares.c.share_id == share_id,
            shares.c.acknowledged_at.is_(None),
            shares.c.revoked_at.is_(None) | (shares.c.revoked_at > now),
        )
        .values(acknowledged_at=now, acknowledged_device=caller.device_id)
    )
    if acknowledged.rowcount != 1:
        # Someone acknowledged or revoked it between the read and this write.
        raise _denied(
            share_id, "conflict", "the share was acknowledged or revoked just now", status=409
        )
    return Acknowledgement(share_id, statement, signature, bytes(signing_key), len(items))


def _check_items(db: Connection, share_id: str, items: Sequence[ReceivedItem]) -> None:
    """The items must be exactly the share's frozen record versions, each with the
    ciphertext digest committed for it."""
    committed = {
        (row.record_id, row.version): row.ciphertext_sha256
        for row in db.execute(
            select(
                share_items.c.record_id, share_items.c.version, record_versions.c.ciphertext_sha256
            )
            .join(
                record_versions,
                (record_versions.c.record_id == share_items.c.record_id)
                & (record_versions.c.version == share_items.c.version),
            )
            .where(share_items.c.share_id == share_id)
        )
    }
    given = {(item.record_id, item.version): item.ciphertext_sha256 for item in items}
    missing = sorted(committed.keys() - given.keys())
    extra = sorted(given.keys() - committed.keys())
    differ = sorted(
        pair
        for pair in committed.keys() & given.keys()
        if committed[pair] is None or not hmac.compare_digest(committed[pair], given[pair])
    )
    if not (missing or extra or differ):
        return
    parts = []
    if missing:
        parts.append(f"missing: {_named(missing)}")
    if extra:
        parts.append(f"not in the share: {_named(extra)}")
    if differ:
        parts.append(f"digest differs from the committed ciphertext: {_named(differ)}")
    raise _denied(
        share_id,
        "items_differ",
        "the receipt is not exactly what the share lists (" + "; ".join(parts) + ")",
        status=422,
        missing=[list(pair) for pair in missing[:SHOWN]],
        extra=[list(pair) for pair in extra[:SHOWN]],
        digest_differs=[list(pair) for pair in differ[:SHOWN]],
    )
