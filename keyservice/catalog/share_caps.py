"""Counting releases through a share against its per-record download cap (issue 14).

One conditional UPDATE per counted item (``used = used + 1 WHERE used < cap``), never a read
then a write: the database serialises the increments, so the cap is exact under any
concurrency, on SQLite and PostgreSQL, across instances (the read-modify-write of Bitwarden
Send let extra downloads through). A device asking again for an item it was counted for
within ``GRACE`` is not counted again: a dropped connection is not punished.

The count is spent in its own transaction before the release's audit entry, committed
without waiting for the disk (see ``spend_downloads``); if that entry then fails, the count
stays spent, but the device's retry within the grace window is free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, select, update

from keyservice.catalog.share_facts import Pair
from keyservice.db.engine import relaxed_durability
from keyservice.db.tables import share_downloads, share_items
from keyservice.ids import new_id

GRACE = timedelta(minutes=10)

_SPEND = (
    update(share_items)
    .where(
        share_items.c.share_id == bindparam("s"),
        share_items.c.record_id == bindparam("r"),
        share_items.c.version == bindparam("v"),
        share_items.c.used < bindparam("cap"),
    )
    .values(used=share_items.c.used + 1)
)
# Built once, like _SPEND: they run inside the database's write lock, which every other
# writer (the audit group's commits among them) waits for.
_COUNT = share_downloads.insert().values(
    download_id=bindparam("d"),
    share_id=bindparam("s"),
    record_id=bindparam("r"),
    version=bindparam("v"),
    device_id=bindparam("device"),
    counted_at=bindparam("now"),
)
_RESUMED = (
    select(share_downloads.c.share_id)
    .where(
        share_downloads.c.share_id.in_(bindparam("share_ids", expanding=True)),
        share_downloads.c.record_id == bindparam("r"),
        share_downloads.c.version == bindparam("v"),
        share_downloads.c.device_id == bindparam("device"),
        share_downloads.c.counted_at > bindparam("since"),
        share_downloads.c.counted_at <= bindparam("now"),
    )
    .limit(1)
)


def spend_downloads(
    db: Connection,
    *,
    device_id: str,
    live: Mapping[Pair, tuple[tuple[str, int | None], ...]],
    pairs: Iterable[Pair],
    now: datetime,
) -> dict[Pair, str]:
    """The ``pairs`` that may be released now, each with the share it goes through: the
    first live share listing it without a cap, the share it was counted on when resumed
    within the grace window, or the first with downloads left, counted by this call. Commits
    its own transaction."""
    allowed: dict[Pair, str] = {}
    capped: list[tuple[Pair, tuple[tuple[str, int | None], ...]]] = []
    for pair in pairs:
        listing = live.get(pair, ())
        uncapped = next((share_id for share_id, cap in listing if cap is None), None)
        if uncapped is not None:
            allowed[pair] = uncapped
        elif listing:
            capped.append((pair, listing))
    if not capped:
        return allowed
    # The commit does not wait for the disk: the release's audit entry, committed durably
    # after this and before any key leaves, flushes the log past it (SQLite's WAL and
    # PostgreSQL's WAL are written in order), so a count can be lost in a power cut only
    # with a release whose key never left. Waiting here cost a second disk flush per
    # counted release (4 ms of its 5 on the bench's SQLite, bench/shares.py).
    with relaxed_durability(db):
        try:
            for pair, listing in capped:
                through = _counted(db, device_id, pair, listing, now=now)
                if through is not None:
                    allowed[pair] = through
        except BaseException:
            db.rollback()
            raise
        db.commit()
    return allowed


def _counted(
    db: Connection,
    device_id: str,
    pair: Pair,
    listing: tuple[tuple[str, int | None], ...],
    *,
    now: datetime,
) -> str | None:
    """The share through which ``pair`` may be released to the device: the one it was
    counted on, resumed within the grace window, or the first of its shares with downloads
    left, counted now; None if none."""
    resumed = _resumed(db, device_id, pair, [share_id for share_id, _ in listing], now=now)
    if resumed is not None:
        return resumed
    for share_id, cap in listing:
        spent = db.execute(_SPEND, {"s": share_id, "r": pair[0], "v": pair[1], "cap": cap})
        if spent.rowcount == 1:
            db.execute(
                _COUNT,
                {
                    "d": new_id(),
                    "s": share_id,
                    "r": pair[0],
                    "v": pair[1],
                    "device": device_id,
                    "now": now,
                },
            )
            return share_id
    return None


def _resumed(
    db: Connection, device_id: str, pair: Pair, share_ids: list[str], *, now: datetime
) -> str | None:
    found = db.execute(
        _RESUMED,
        {
            "share_ids": share_ids,
            "r": pair[0],
            "v": pair[1],
            "device": device_id,
            "since": now - GRACE,
            "now": now,
        },
    ).first()
    return None if found is None else str(found.share_id)
