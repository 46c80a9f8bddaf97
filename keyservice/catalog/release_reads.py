"""A key release's reads: its versions, their children and their wrapped keys, in a fixed
number of queries whatever the batch's size (keyservice/catalog/release.py decides on them).

The statements are built once per dialect: constructing a statement and its cache key cost
more than running it. Each takes the batch's record ids as ``record_ids`` (``_ids``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    bindparam,
    func,
    literal_column,
    select,
)

from keyservice.catalog.facts import SHREDDED_CHILD_IDS
from keyservice.db.tables import (
    COMMITTED,
    record_children,
    record_versions,
    records,
    wrapped_record_keys,
)

# What an item asks for: a record id and a version, or None for the latest committed one.
Asked = tuple[str, int | None]
Pair = tuple[str, int]


class VersionRow(NamedTuple):
    """A record version as a release reads it: the columns of the versions statement, in its
    order. A tuple, not SQLAlchemy's row: reading a field of a row by name cost 0.3 µs, and
    a 1,000-item release reads about ten per item."""

    record_id: str
    version: int
    object_name: str
    encrypted_metadata: bytes | None
    ciphertext_size: int
    ciphertext_sha256: bytes
    state: str
    category: str
    withheld_from_guardians: bool
    # What made ``ciphertext_sha256`` (the column's first name): "sha256" or "blake3".
    ciphertext_digest_alg: str


@dataclass(frozen=True)
class Batch:
    """The committed versions a release's items name, of records not deleted.

    ``rows``: each such version, by (record id, version); ``children``: each of their
    records' child ids, ascending (every child the record was made with: its attributes);
    ``resolved``: each item asked that names such a version, to that version (an item
    without a version: the latest committed one); ``shredded``: those children whose shred
    was carried out, read with them (they no longer count for the decision).
    """

    rows: dict[Pair, VersionRow]
    children: dict[str, list[str]]
    resolved: dict[Asked, Pair]
    shredded: frozenset[str] = frozenset()


def _one_of_the_ids(column: ColumnElement[str], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the bound ``record_ids``.

    SQLite reads them from one JSON array (``json_each``): an expanding list of 1,000 ids
    cost SQLAlchemy more to render and bind than the query cost to run. PostgreSQL takes
    the expanding list.
    """
    if dialect == "sqlite":
        listed: Select[str] = select(literal_column("value", String)).select_from(
            func.json_each(bindparam("record_ids", type_=String()))
        )
        return column.in_(listed)
    return column.in_(bindparam("record_ids", expanding=True))


def _ids(dialect: str, record_ids: Iterable[str]) -> dict[str, Any]:
    """The ``record_ids`` parameter of the statements below, for ``dialect``."""
    listed = list(record_ids)
    return {"record_ids": json.dumps(listed) if dialect == "sqlite" else listed}


class _Statements(NamedTuple):
    versions: Select[Any]
    children: Select[Any]
    wraps: Select[Any]


def _statements(dialect: str) -> _Statements:
    versions = (
        # VersionRow's fields, in its order.
        select(
            record_versions.c.record_id,
            record_versions.c.version,
            record_versions.c.object_name,
            record_versions.c.encrypted_metadata,
            record_versions.c.ciphertext_size,
            record_versions.c.ciphertext_sha256,
            record_versions.c.state,
            records.c.category,
            records.c.withheld_from_guardians,
            record_versions.c.ciphertext_digest_alg,
        )
        .join(records, records.c.record_id == record_versions.c.record_id)
        .where(
            # One id list binds faster than (id, version) pairs; versions are checked after,
            # which also finds a record's latest committed version without another query.
            # So is the state: given it, SQLite walks every committed version through the
            # state index instead of looking the ids up by primary key.
            _one_of_the_ids(record_versions.c.record_id, dialect),
            records.c.deleted_at.is_(None),
        )
    )
    children = (
        # Whether each child was shredded, in the same query: an uncorrelated subquery, run
        # once, over the few shred requests carried out.
        select(
            record_children.c.record_id,
            record_children.c.child_id,
            record_children.c.child_id.in_(SHREDDED_CHILD_IDS.scalar_subquery()),
        )
        .where(_one_of_the_ids(record_children.c.record_id, dialect))
        # By the primary key, so SQLite looks the ids up instead of scanning the child index.
        .order_by(record_children.c.record_id, record_children.c.child_id)
    )
    wraps = (
        # Unpacked in this order by load_wraps.
        select(
            wrapped_record_keys.c.record_id,
            wrapped_record_keys.c.version,
            wrapped_record_keys.c.child_id,
            wrapped_record_keys.c.child_key_version,
            wrapped_record_keys.c.wrapped,
        )
        .where(_one_of_the_ids(wrapped_record_keys.c.record_id, dialect))
        .order_by(
            wrapped_record_keys.c.record_id,
            wrapped_record_keys.c.version,
            wrapped_record_keys.c.child_id,
        )
    )
    return _Statements(versions, children, wraps)


_BATCH = {dialect: _statements(dialect) for dialect in ("sqlite", "postgresql")}


def load_batch(db: Connection, asked: Sequence[Asked]) -> Batch:
    """The committed versions ``asked`` names, and their children (with whether each was
    shredded): two queries."""
    exact = {item for item in asked if item[1] is not None}
    latest = {rid for rid, version in asked if version is None}
    dialect = db.dialect.name
    rows: dict[Pair, VersionRow] = {}
    newest: dict[str, VersionRow] = {}
    found = db.execute(_BATCH[dialect].versions, _ids(dialect, {rid for rid, _ in asked}))
    for row in map(VersionRow._make, found):
        if row.state != COMMITTED:
            continue
        if (row.record_id, row.version) in exact:
            rows[(row.record_id, row.version)] = row
        if latest and row.record_id in latest:
            best = newest.get(row.record_id)
            if best is None or row.version > best.version:
                newest[row.record_id] = row
    resolved: dict[Asked, Pair] = {}
    for item in asked:
        rid, version = item
        if version is None:
            latest_row = newest.get(rid)
            if latest_row is None:
                continue
            version = latest_row.version
            rows.setdefault((rid, version), latest_row)
        elif (rid, version) not in rows:
            continue
        resolved[item] = (rid, version)
    children: dict[str, list[str]] = {}
    shredded: set[str] = set()
    for record_id, child_id, gone in db.execute(
        _BATCH[dialect].children, _ids(dialect, {rid for rid, _ in rows})
    ):
        children.setdefault(record_id, []).append(child_id)
        if gone:
            shredded.add(child_id)
    return Batch(rows, children, resolved, frozenset(shredded))


def load_wraps(db: Connection, pairs: Collection[Pair]) -> dict[Pair, list[tuple[str, int, bytes]]]:
    """The wraps of each of ``pairs``' record keys: (child id, child key version, wrapped),
    by child id ascending. One query."""
    wraps: dict[Pair, list[tuple[str, int, bytes]]] = {}
    dialect = db.dialect.name
    found = db.execute(_BATCH[dialect].wraps, _ids(dialect, {rid for rid, _ in pairs}))
    for record_id, version, child_id, key_version, wrapped in found:
        if (record_id, version) in pairs:
            wraps.setdefault((record_id, version), []).append((child_id, key_version, wrapped))
    return wraps
