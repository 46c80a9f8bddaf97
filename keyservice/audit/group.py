"""Group commit: concurrent requests' audit entries appended in one durable transaction.

A request that must not answer before its entry is committed (a key release) hands the entry
to the group and waits: a thread calls ``GroupCommit.commit`` and blocks, a coroutine awaits
``GroupCommit.commit_async`` and holds no thread meanwhile. The first of the waiting requests
leads: on a connection of its own (for a coroutine: checked out from the engine in the
batch's worker thread, never one the request holds) it appends every entry queued so far,
in order, with one head lock, spends their nonces, writes their index rows, and commits once
(one sync of the log on SQLite with ``synchronous=FULL``); then it wakes each request with
its sequence number, or with ``AuditUnavailableError`` if the transaction failed, and hands
the lead to the first request that queued meanwhile. So a request still gets its answer
only after its own entry is durable, and a failed batch fails every request in it (fail
closed). Across instances the batches serialise on the chain head like single appends
(docs/AUDIT.md, decisions 0005 and 0007).

A write may carry its request's nonce (``NonceClaim``): the batch spends it in the same
transaction. A nonce spent before, by any instance or earlier in the same batch, makes the
write a replay: its ``rejected`` entry is appended instead of its own, its index rows are
dropped, and its request gets ``AuthenticationError(Refusal.REPLAYED_NONCE)``. With the
context's ``active_devices`` check, a write whose device or principal was revoked after its
request was authenticated is refused the same way (``Refusal.REVOKED_DEVICE``): revocation
takes effect on every release not yet committed, not only on the next request. The batch
only finds these refusals; what a refused request is answered is the API's business.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table

from keyservice.audit.chain import AuditEvent, Checkpointer, append_many, lock_head
from keyservice.audit.mac import AuditMac
from keyservice.errors import AuditUnavailableError, AuthenticationError, Refusal

MAX_BATCH = 256
# Longer than any database timeout (5 s for the lock, 5 s per statement): a follower that
# waits this long has a leader stuck outside the database and fails closed.
WAIT_S = 60.0


class NonceSpender(Protocol):
    """The replay cache as a batch uses it (keyservice.auth.nonces.ReplayCache)."""

    def spend(
        self, connection: Connection, pairs: Sequence[tuple[str, str]], *, now: datetime
    ) -> set[tuple[str, str]]: ...


@dataclass(frozen=True)
class IndexRows:
    """Rows to insert into ``table`` with the entry: ``audit_seq`` (the entry's seq), then
    each row's values for ``columns``, then the ``shared`` values, the same in every row.

    Plain tuples through the driver (``_insert``): building a mapping per row and binding
    each row's time through SQLAlchemy cost a quarter of a 1,000-key release.
    """

    table: Table
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]
    shared: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NonceClaim:
    """A request's nonce, spent in the batch; ``rejected`` is its entry if it was spent before."""

    device_id: str
    nonce: str
    rejected: AuditEvent


@dataclass(frozen=True)
class AuditWrite:
    """One entry and the index rows that must commit with it."""

    event: AuditEvent
    index: tuple[IndexRows, ...] = ()
    claim: NonceClaim | None = None


@dataclass(frozen=True)
class BatchContext:
    """What a leader needs besides its connection: the time, the audit MAC key, checkpoints,
    the replay cache."""

    clock: Callable[[], datetime]
    mac: AuditMac
    checkpointer: Checkpointer | None = None
    replay_cache: NonceSpender | None = None
    # The devices among those given that may still act (keyservice.auth.revocation), asked
    # in the batch's transaction; None skips the check (tests of the group alone).
    active_devices: Callable[[Connection, Collection[str]], set[str]] | None = None


@dataclass(eq=False)
class _Pending:
    write: AuditWrite
    # A thread waits on ``ready``; a coroutine awaits ``future`` on ``loop``.
    ready: threading.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[None] | None = None
    leads: bool = False
    seq: int | None = None
    failure: BaseException | None = None

    def result(self) -> int:
        if self.failure is not None:
            raise self.failure
        assert self.seq is not None
        return self.seq


class GroupCommit:
    """Commits queued audit writes in batches, led by one of the waiting requests."""

    def __init__(self, *, max_batch: int = MAX_BATCH, wait_s: float = WAIT_S) -> None:
        self._max_batch = max_batch
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False
        # Called after each batch with its size and the seconds its write took (metrics).
        self.on_batch: Callable[[int, float], None] | None = None

    def commit(self, connection: Connection, write: AuditWrite, context: BatchContext) -> int:
        """Return ``write``'s sequence number once its entry is committed, or raise.

        ``connection`` must have no transaction open; it is used only if this call leads.
        Raises ``AuditUnavailableError`` when the entry could not be committed, and
        ``AuthenticationError`` when the write's nonce had been spent before.
        """
        ready = threading.Event()
        pending = _Pending(write, ready=ready)
        if not self._enqueue(pending) and not ready.wait(self._wait_s):
            self._give_up(pending)
        if pending.leads:
            self._lead(pending, lambda: nullcontext(connection), context)
        return pending.result()

    async def commit_async(self, engine: Engine, write: AuditWrite, context: BatchContext) -> int:
        """``commit`` for a coroutine: it waits on the event loop, and leads in a worker thread
        on a connection that thread checks out of ``engine`` and returns. The coroutine holds
        no connection: one it held could be closed on the event loop (the coroutine cancelled)
        while the batch thread writes on it.

        Cancelling it never stops a batch or stalls the group: a follower cancelled while it
        waits leaves the queue (handing on the lead if it was just given it); one cancelled
        once its lead has started (which is at once: no await comes first) leaves that batch
        running, so its entry may still commit, as with a follower that gives up or whose
        batch was already running (docs/AUDIT.md).
        """
        loop = asyncio.get_running_loop()
        pending = _Pending(write, loop=loop, future=loop.create_future())
        if not self._enqueue(pending):
            assert pending.future is not None
            try:
                async with asyncio.timeout(self._wait_s):
                    await pending.future
            except TimeoutError:
                self._give_up(pending)
            except asyncio.CancelledError:
                self._withdraw(pending)
                raise
        if pending.leads:
            # Started before any await, so a cancellation cannot come between taking the lead
            # and starting the batch (that left the lead taken and every later request
            # waiting); and shielded: the batch's other requests, and the next leader, wait
            # for this thread's outcome, which a cancelled coroutine no longer awaits.
            lead = loop.run_in_executor(None, self._lead, pending, engine.connect, context)
            await asyncio.shield(lead)
        return pending.result()

    def _enqueue(self, pending: _Pending) -> bool:
        """Queue ``pending``; return whether it leads at once."""
        with self._lock:
            self._queue.append(pending)
            if not self._leading:
                self._leading = pending.leads = True
        return pending.leads

    def _give_up(self, pending: _Pending) -> None:
        """A follower waited too long: fail closed unless the lead reached it meanwhile."""
        with self._lock:
            if pending.leads:
                return
            # Never written if still queued; if a batch holds it, it may commit after all,
            # and the entry records a release that did not happen.
            if pending in self._queue:
                self._queue.remove(pending)
        raise AuditUnavailableError()

    def _withdraw(self, pending: _Pending) -> None:
        """A cancelled coroutine leaves the queue, passing on the lead if it had it."""
        with self._lock:
            if pending in self._queue:
                self._queue.remove(pending)
            if not pending.leads:
                return
            handed = self._hand_lead()
        if handed is not None:
            _wake([handed])

    def _hand_lead(self) -> _Pending | None:
        """Give the lead to the first queued request (call with the lock held)."""
        if self._queue:
            self._queue[0].leads = True
            return self._queue[0]
        self._leading = False
        return None

    def _lead(
        self,
        leader: _Pending,
        connect: Callable[[], AbstractContextManager[Connection]],
        context: BatchContext,
    ) -> None:
        """Write the queued batch (``leader`` first in it) on ``connect()``'s connection and
        wake who waits for it. A connection that cannot be had fails the batch like a write."""
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        started = time.perf_counter()
        try:
            with connect() as connection:
                outcomes = _write(connection, [p.write for p in batch], context)
        except BaseException as exc:
            for p in batch:
                p.failure = _failure(exc)
        else:
            for p, seq in zip(batch, outcomes, strict=True):
                if isinstance(seq, Refusal):
                    p.failure = AuthenticationError(seq)
                else:
                    p.seq = seq
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        with self._lock:
            handed = self._hand_lead()
        # The leader is running this; everyone else in the batch, and the next leader, waits.
        _wake([p for p in batch if p is not leader] + ([handed] if handed is not None else []))


def _wake(pendings: list[_Pending]) -> None:
    """Wake waiting threads at once and coroutines with one call into each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for p in pendings:
        if p.ready is not None:
            p.ready.set()
        elif p.loop is not None and p.future is not None:
            by_loop.setdefault(p.loop, []).append(p.future)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, futures)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            continue


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # a follower that timed out or was cancelled has gone
            future.set_result(None)


def _write(
    connection: Connection, writes: list[AuditWrite], context: BatchContext
) -> list[int | Refusal]:
    """Append and commit ``writes`` in one transaction; roll back on any failure.

    Returns each write's sequence number, or, for a write with a nonce that is refused, the
    reason (its rejection entry has that write's place in the chain instead):
    ``REPLAYED_NONCE`` if its nonce was spent before, ``REVOKED_DEVICE`` if its device or
    principal was revoked (or is gone) since the request was authenticated.
    """
    now = context.clock()
    try:
        # The head is locked first, as by every append, so that instances' batches serialise
        # there before any of them touches the nonce table.
        head = lock_head(connection)
        refused = _refused(connection, writes, context, now)
        events = [_event(w, refused.get(id(w))) for w in writes]
        seqs = append_many(
            connection,
            events,
            mac=context.mac,
            now=now,
            checkpointer=context.checkpointer,
            head=head,
        )
        by_shape: dict[tuple[Table, tuple[str, ...]], list[tuple[Any, ...]]] = {}
        for write, seq in zip(writes, seqs, strict=True):
            if id(write) in refused:
                continue
            for index in write.index:
                names = ("audit_seq", *index.columns, *index.shared)
                shared = _bound(connection, index.table, index.shared)
                by_shape.setdefault((index.table, names), []).extend(
                    (seq, *row, *shared) for row in index.rows
                )
        for (table, names), rows in by_shape.items():
            _insert(connection, table, names, rows)
        if not connection.in_transaction():
            # Something ended the transaction under the batch (its connection closed or rolled
            # back elsewhere): commit() would do nothing, and nothing above is written.
            raise RuntimeError("the audit batch's transaction ended before its commit")
        connection.commit()
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        raise
    return [refused.get(id(w), seq) for w, seq in zip(writes, seqs, strict=True)]


def _event(write: AuditWrite, refusal: Refusal | None) -> AuditEvent:
    """The entry a write appends: its own, or its claim's rejection naming the reason."""
    if refusal is None:
        return write.event
    assert write.claim is not None
    rejected = write.claim.rejected
    if refusal == Refusal.REPLAYED_NONCE:
        return rejected
    return dataclasses.replace(rejected, detail={**rejected.detail, "reason": refusal})


def _refused(
    connection: Connection, writes: list[AuditWrite], context: BatchContext, now: datetime
) -> dict[int, Refusal]:
    """Spend the writes' nonces and re-check their devices; the refused writes' reasons by id.

    A replay is refused before a revocation is looked at, so that a replayed request is
    audited as one whatever has happened to its device since.
    """
    fresh = _spend_nonces(connection, writes, context, now)
    refused = {
        id(w): Refusal.REPLAYED_NONCE for w in writes if w.claim is not None and id(w) not in fresh
    }
    if context.active_devices is not None and fresh:
        claimed = {w.claim.device_id for w in writes if id(w) in fresh and w.claim is not None}
        active = context.active_devices(connection, claimed)
        for w in writes:
            if id(w) in fresh and w.claim is not None and w.claim.device_id not in active:
                refused[id(w)] = Refusal.REVOKED_DEVICE
    return refused


def _bound(connection: Connection, table: Table, values: Mapping[str, Any]) -> tuple[Any, ...]:
    """``values`` as the driver takes them, through their columns' types, once."""
    bound = []
    for name, value in values.items():
        process = table.c[name].type.bind_processor(connection.dialect)
        bound.append(process(value) if process is not None else value)
    return tuple(bound)


def _insert(
    connection: Connection, table: Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (driver values for ``names``) with one executemany of the driver.

    Only the shared values are bound through their column types (``_bound``): a row's own
    values must already be what the driver takes (strings and integers).
    """
    if not rows:
        return
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    preparer = connection.dialect.identifier_preparer
    # Identifiers from the table's metadata, quoted; every value goes as a parameter.
    statement = (
        f"INSERT INTO {preparer.format_table(table)} "  # noqa: S608
        f"({', '.join(preparer.quote(name) for name in names)}) "
        f"VALUES ({', '.join(mark for _ in names)})"
    )
    connection.exec_driver_sql(statement, rows)


def _spend_nonces(
    connection: Connection, writes: list[AuditWrite], context: BatchContext, now: datetime
) -> set[int]:
    """Spend the writes' nonces in the batch's transaction; return the ids of fresh writes.

    The first write of a (device, nonce) pair in arrival order gets it; a later one in the
    same batch is a replay like one that comes after the commit.
    """
    claims: dict[tuple[str, str], AuditWrite] = {}
    for write in writes:
        if write.claim is not None:
            claims.setdefault((write.claim.device_id, write.claim.nonce), write)
    if not claims:
        return set()
    if context.replay_cache is None:
        raise ValueError("writes with a nonce need the batch context's replay cache")
    spent = context.replay_cache.spend(connection, list(claims), now=now)
    return {id(claims[pair]) for pair in spent}


def _failure(exc: BaseException) -> AuditUnavailableError:
    """A fresh error per waiting request (one exception object raised in many threads would
    share one traceback), with the cause chained."""
    failure = AuditUnavailableError()
    failure.__cause__ = exc
    return failure
