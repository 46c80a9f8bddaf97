"""Group commit: concurrent requests' audit entries appended in one durable transaction.

A request that must not answer before its entry is committed (a key release) hands the entry
to ``GroupCommit.commit`` and blocks. The first of the waiting requests leads: on its own
connection it appends every entry queued so far, in order, with one head lock, writes their
index rows, and commits once (one sync of the log on SQLite with ``synchronous=FULL``); then it
wakes each request with its sequence number, or with ``AuditUnavailableError`` if the
transaction failed, and hands the lead to the first request that queued meanwhile. So a
request still gets its answer only after its own entry is durable, and a failed batch fails
every request in it (fail closed). Across instances the batches serialise on the chain head
like single appends (docs/AUDIT.md, decision 0005).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert

from keyservice.audit.chain import AuditEvent, Checkpointer, append_many
from keyservice.errors import AuditUnavailableError

MAX_BATCH = 256
# Longer than any database timeout (5 s for the lock, 5 s per statement): a follower that
# waits this long has a leader stuck outside the database and fails closed.
WAIT_S = 60.0


@dataclass(frozen=True)
class IndexRows:
    """Rows to insert into ``table`` with the entry, each given ``audit_seq`` = its seq."""

    table: Table
    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class AuditWrite:
    """One entry and the index rows that must commit with it."""

    event: AuditEvent
    index: tuple[IndexRows, ...] = ()


@dataclass
class _Pending:
    write: AuditWrite
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    seq: int | None = None
    failure: BaseException | None = None


class GroupCommit:
    """Commits queued audit writes in batches, led by one of the waiting requests."""

    def __init__(self, *, max_batch: int = MAX_BATCH, wait_s: float = WAIT_S) -> None:
        self._max_batch = max_batch
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False

    def commit(
        self,
        connection: Connection,
        write: AuditWrite,
        *,
        clock: Callable[[], datetime],
        checkpointer: Checkpointer | None,
    ) -> int:
        """Return ``write``'s sequence number once its entry is committed, or raise.

        ``connection`` must have no transaction open; it is used only if this call leads.
        Raises ``AuditUnavailableError`` when the entry could not be committed.
        """
        pending = _Pending(write)
        with self._lock:
            self._queue.append(pending)
            if not self._leading:
                self._leading = pending.leads = True
        if not pending.leads and not pending.ready.wait(self._wait_s):
            with self._lock:
                if not pending.leads:
                    # Never written if still queued; if a batch holds it, it may commit
                    # after all, and the entry records a release that did not happen.
                    if pending in self._queue:
                        self._queue.remove(pending)
                    raise AuditUnavailableError()
        if pending.leads:
            self._lead(connection, clock, checkpointer)
        if pending.failure is not None:
            raise pending.failure
        assert pending.seq is not None
        return pending.seq

    def _lead(
        self,
        connection: Connection,
        clock: Callable[[], datetime],
        checkpointer: Checkpointer | None,
    ) -> None:
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            seqs = _write(connection, [p.write for p in batch], clock(), checkpointer)
        except BaseException as exc:
            for p in batch:
                p.failure = _failure(exc)
        else:
            for p, seq in zip(batch, seqs, strict=True):
                p.seq = seq
        with self._lock:
            if self._queue:
                self._queue[0].leads = True
                self._queue[0].ready.set()
            else:
                self._leading = False
        for p in batch:
            p.ready.set()


def _write(
    connection: Connection,
    writes: list[AuditWrite],
    now: datetime,
    checkpointer: Checkpointer | None,
) -> list[int]:
    """Append and commit ``writes`` in one transaction; roll back on any failure."""
    try:
        seqs = append_many(
            connection, [w.event for w in writes], now=now, checkpointer=checkpointer
        )
        by_table: dict[Table, list[dict[str, Any]]] = {}
        for write, seq in zip(writes, seqs, strict=True):
            for index in write.index:
                by_table.setdefault(index.table, []).extend(
                    {**row, "audit_seq": seq} for row in index.rows
                )
        for table, rows in by_table.items():
            if rows:  # an empty list would insert one row of defaults
                connection.execute(insert(table), rows)
        connection.commit()
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        raise
    return seqs


def _failure(exc: BaseException) -> AuditUnavailableError:
    """A fresh error per waiting request (one exception object raised in many threads would
    share one traceback), with the cause chained."""
    failure = AuditUnavailableError()
    failure.__cause__ = exc
    return failure
