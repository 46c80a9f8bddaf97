"""An outside recipient's shares as the release rules see them (keyservice/policy/rules.py,
rules 3 and 4), loaded by keyservice/catalog/facts.py for outside recipients only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select

from keyservice.db.tables import share_items, shares
from keyservice.policy import Basis, Share

Pair = tuple[str, int]

# Built once: constructing a statement and its cache key cost more than running it.
_SHARES = (
    select(shares, share_items.c.record_id, share_items.c.version)
    .join(share_items, share_items.c.share_id == shares.c.share_id)
    .where(
        and_(
            shares.c.recipient_id == bindparam("recipient_id"),
            share_items.c.record_id.in_(bindparam("record_ids", expanding=True)),
        )
    )
)


@dataclass(frozen=True)
class RecipientShares:
    """An outside recipient's shares of some records, as the rules judge them, and the
    record versions the live ones list, each with the live shares listing it and their
    download caps (None: no cap). A share is frozen to the versions it was made with.
    ``unopened``: the live shares nothing was released through yet (their first release
    sets ``opened_at``, keyservice/catalog/share_receipts.py)."""

    shares: tuple[Share, ...]
    live: Mapping[Pair, tuple[tuple[str, int | None], ...]]
    unopened: frozenset[str] = frozenset()


def shares_of_recipient(
    db: Connection, recipient_id: str, record_ids: Iterable[str], *, now: datetime
) -> RecipientShares:
    """The recipient's shares listing any of ``record_ids``, live or not (the rules judge,
    and say why). One query; releases load it for outside recipients only."""
    wanted = list(set(record_ids))
    if not wanted:
        return RecipientShares((), {})
    rows = db.execute(_SHARES, {"recipient_id": recipient_id, "record_ids": wanted}).all()
    first: dict[str, Any] = {}
    listed: dict[str, set[str]] = {}
    live: dict[Pair, tuple[tuple[str, int | None], ...]] = {}
    unopened: set[str] = set()
    for row in rows:
        first.setdefault(row.share_id, row)
        listed.setdefault(row.share_id, set()).add(row.record_id)
        if (row.revoked_at is None or now < row.revoked_at) and (
            row.valid_from <= now < row.valid_to
        ):
            pair = (row.record_id, row.version)
            live[pair] = (*live.get(pair, ()), (row.share_id, row.download_cap))
            if row.opened_at is None:
                unopened.add(row.share_id)
    loaded = tuple(
        Share(
            share_id=share_id,
            recipient_id=recipient_id,
            basis=Basis(row.basis),
            basis_id=row.basis_id,
            record_ids=frozenset(listed[share_id]),
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            revoked_at=row.revoked_at,
        )
        for share_id, row in first.items()
    )
    return RecipientShares(loaded, live, frozenset(unopened))
