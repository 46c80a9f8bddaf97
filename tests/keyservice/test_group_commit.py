"""Group commit of audit entries (decisions 0005, 0007): concurrent writes chain in order and
verify, each index row carries its own entry's seq, a failed batch fails every request in it,
a nonce spent in a batch is refused to every later write (same batch, later batch, or spent
elsewhere), and coroutines and threads share one group."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select

import keyservice.audit.group as group_module
from keyservice.audit.chain import AuditEvent, Checkpointer
from keyservice.audit.group import AuditWrite, BatchContext, GroupCommit, IndexRows, NonceClaim
from keyservice.audit.mac import AuditMac
from keyservice.audit.verify import verify_chain
from keyservice.auth import ReplayCache
from keyservice.auth.revocation import active_devices
from keyservice.db import make_engine, upgrade_to_head
from keyservice.db.tables import (
    audit_checkpoints,
    audit_entries,
    audit_head,
    devices,
    disclosures,
    principals,
    seen_nonces,
)
from keyservice.errors import AuditUnavailableError, AuthenticationError
from tests.servers import PostgresServer

KEY = Ed25519PrivateKey.generate()
MAC = AuditMac(secrets.token_bytes(32))


def _now() -> datetime:
    return datetime.now(UTC)


CONTEXT = BatchContext(_now, MAC, Checkpointer(KEY, every=5), ReplayCache())


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database().url
    engine = make_engine(url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def _block(connection: Connection) -> None:
    """Hold what a batch needs first: the write lock on SQLite, the head row on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(audit_head).with_for_update())
    else:
        connection.execute(select(audit_entries.c.seq))


def _write(n: int, *, bad: bool = False, nonce: str | None = None) -> AuditWrite:
    # A disclosure row without its basis fails the insert, and with it the transaction.
    row = (f"c{n}", "r", 1, None if bad else "assignment")
    claim = None
    if nonce is not None:
        rejected = AuditEvent(action="auth.reject", outcome="deny", detail={"n": n})
        claim = NonceClaim("d" * 32, nonce, rejected)
    return AuditWrite(
        AuditEvent(action="keys.release", outcome="allow", detail={"n": n}),
        (
            IndexRows(
                disclosures,
                columns=("child_id", "record_id", "version", "basis"),
                rows=[row],
                shared={"principal_id": "p", "at": _now()},
            ),
        ),
        claim,
    )


def _commit(group: GroupCommit, engine: Engine, write: AuditWrite) -> int | Exception:
    with engine.connect() as connection:
        try:
            return group.commit(connection, write, CONTEXT)
        except (AuditUnavailableError, AuthenticationError) as exc:
            return exc


def test_concurrent_writes_chain_in_order(engine: Engine) -> None:
    group = GroupCommit()
    results: dict[int, int | Exception] = {}

    def run(n: int) -> None:
        results[n] = _commit(group, engine, _write(n))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == list(range(1, 41))  # type: ignore[type-var]
    with engine.connect() as connection:
        assert verify_chain(connection, KEY.public_key(), mac=MAC, store=None).ok
        entries = {row.seq: row.detail for row in connection.execute(select(audit_entries))}
        for n, seq in results.items():
            assert entries[seq] == f'{{"n":{n}}}'
        # Each index row names the entry of its own request.
        audit_seqs = {
            row.child_id: row.audit_seq for row in connection.execute(select(disclosures))
        }
        assert audit_seqs == {f"c{n}": seq for n, seq in results.items()}
        checkpoints = [row.seq for row in connection.execute(select(audit_checkpoints))]
        assert checkpoints == [5, 10, 15, 20, 25, 30, 35, 40]


def test_a_failed_batch_fails_every_request_in_it(engine: Engine) -> None:
    group = GroupCommit()
    results: dict[int, int | Exception] = {}

    def run(n: int, bad: bool = False) -> None:
        results[n] = _commit(group, engine, _write(n, bad=bad))

    # Hold the write lock so that the first request leads alone and the rest queue behind it.
    with engine.connect() as blocker:
        _block(blocker)
        leader = threading.Thread(target=run, args=(0,))
        leader.start()
        _wait_for(lambda: group._leading)
        others = [threading.Thread(target=run, args=(n, n == 3)) for n in range(1, 6)]
        for thread in others:
            thread.start()
        _wait_for(lambda: len(group._queue) == 5)
        blocker.rollback()
    for thread in [leader, *others]:
        thread.join()
    assert results[0] == 1
    assert all(isinstance(results[n], AuditUnavailableError) for n in range(1, 6))
    with engine.connect() as connection:
        assert [r.seq for r in connection.execute(select(audit_entries))] == [1]
        assert verify_chain(connection, KEY.public_key(), mac=MAC, store=None).ok
    # The group recovers: the next request leads and commits.
    assert _commit(group, engine, _write(9)) == 2


def _wait_for(condition: object) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _hold_lock_and_queue(
    group: GroupCommit, engine: Engine, writes: dict[int, AuditWrite]
) -> dict[int, int | Exception]:
    """Run ``writes`` so that write 0 leads alone and the others form one batch after it."""
    results: dict[int, int | Exception] = {}

    def run(n: int) -> None:
        results[n] = _commit(group, engine, writes[n])

    with engine.connect() as blocker:
        _block(blocker)
        leader = threading.Thread(target=run, args=(0,))
        leader.start()
        _wait_for(lambda: group._leading)
        others = []
        for n in sorted(writes)[1:]:
            others.append(threading.Thread(target=run, args=(n,)))
            others[-1].start()
            # One at a time, so that the batch keeps this order.
            _wait_for(lambda n=n: len(group._queue) == n)
        blocker.rollback()
    for thread in [leader, *others]:
        thread.join()
    return results


def test_a_nonce_replayed_inside_one_batch_gets_a_rejection_entry_instead(
    engine: Engine,
) -> None:
    group = GroupCommit()
    nonce, other = "1" * 32, "2" * 32
    writes = {
        0: _write(0, nonce="0" * 32),
        1: _write(1, nonce=nonce),
        2: _write(2, nonce=nonce),  # the same request again, in the same batch
        3: _write(3, nonce=other),
    }
    results = _hold_lock_and_queue(group, engine, writes)
    assert results[0] == 1
    assert (results[1], results[3]) == (2, 4)
    replayed = results[2]
    assert isinstance(replayed, AuthenticationError)
    assert replayed.reason == "replayed_nonce"
    with engine.connect() as connection:
        entries = {r.seq: (r.action, r.detail) for r in connection.execute(select(audit_entries))}
        assert entries[3] == ("auth.reject", '{"n":2}')
        assert [entries[s][0] for s in (1, 2, 4)] == ["keys.release"] * 3
        # The replay's disclosure row is not written: nothing was released to it.
        assert {r.child_id for r in connection.execute(select(disclosures))} == {"c0", "c1", "c3"}
        spent = {r.nonce for r in connection.execute(select(seen_nonces))}
        assert spent == {"0" * 32, nonce, other}
        assert verify_chain(connection, KEY.public_key(), mac=MAC, store=None).ok


def test_a_nonce_spent_before_is_refused_in_a_later_batch(engine: Engine) -> None:
    group = GroupCommit()
    assert _commit(group, engine, _write(1, nonce="a" * 32)) == 1
    again = _commit(group, engine, _write(2, nonce="a" * 32))
    assert isinstance(again, AuthenticationError)
    # Spent by another route's own transaction (ReplayCache.remember) counts the same.
    with engine.connect() as connection:
        CONTEXT.replay_cache.remember(  # type: ignore[union-attr]
            connection, device_id="d" * 32, nonce="b" * 32, now=_now()
        )
    assert isinstance(_commit(group, engine, _write(3, nonce="b" * 32)), AuthenticationError)
    with engine.connect() as connection:
        actions = [r.action for r in connection.execute(select(audit_entries))]
        assert actions == ["keys.release", "auth.reject", "auth.reject"]
        assert [r.child_id for r in connection.execute(select(disclosures))] == ["c1"]


def test_a_failed_batch_spends_no_nonce_and_releases_nothing(engine: Engine) -> None:
    group = GroupCommit()
    failed = _commit(group, engine, _write(1, bad=True, nonce="c" * 32))
    assert isinstance(failed, AuditUnavailableError)
    with engine.connect() as connection:
        assert connection.execute(select(seen_nonces)).first() is None
        assert connection.execute(select(audit_entries)).first() is None
        assert connection.execute(select(disclosures)).first() is None


def test_coroutines_and_threads_share_one_group(engine: Engine) -> None:
    group = GroupCommit()
    results: dict[int, int | Exception] = {}

    async def one(n: int) -> None:
        try:
            results[n] = await group.commit_async(engine, _write(n, nonce=f"{n:032x}"), CONTEXT)
        except (AuditUnavailableError, AuthenticationError) as exc:
            results[n] = exc

    async def many(first: int) -> None:
        await asyncio.gather(*(one(n) for n in range(first, first + 12)))

    def thread(n: int) -> None:
        results[n] = _commit(group, engine, _write(n, nonce=f"{n:032x}"))

    loops = [threading.Thread(target=asyncio.run, args=(many(first),)) for first in (0, 12)]
    # At most 9 connections at once (8 threads, 1 batch): within the pool's 40.
    threads = [threading.Thread(target=thread, args=(n,)) for n in range(24, 32)]
    for t in [*loops, *threads]:
        t.start()
    for t in [*loops, *threads]:
        t.join()
    assert sorted(results.values()) == list(range(1, 33))  # type: ignore[type-var]
    with engine.connect() as connection:
        assert verify_chain(connection, KEY.public_key(), mac=MAC, store=None).ok
        audit_seqs = {r.child_id: r.audit_seq for r in connection.execute(select(disclosures))}
        assert audit_seqs == {f"c{n}": seq for n, seq in results.items()}


def test_a_cancelled_coroutine_leaves_the_queue_and_the_rest_commit(engine: Engine) -> None:
    group = GroupCommit()
    results: dict[int, int | Exception] = {}
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()

    async def queued() -> int:
        return await group.commit_async(engine, _write(1), CONTEXT)

    def run(n: int) -> None:
        results[n] = _commit(group, engine, _write(n))

    try:
        with engine.connect() as blocker:
            _block(blocker)
            leader = threading.Thread(target=run, args=(0,))
            leader.start()
            _wait_for(lambda: group._leading)
            cancelled = asyncio.run_coroutine_threadsafe(queued(), loop)
            _wait_for(lambda: len(group._queue) == 1)
            follower = threading.Thread(target=run, args=(2,))
            follower.start()
            _wait_for(lambda: len(group._queue) == 2)
            cancelled.cancel()
            _wait_for(lambda: len(group._queue) == 1)
            blocker.rollback()
        leader.join()
        follower.join()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
    assert cancelled.cancelled()
    assert results == {0: 1, 2: 2}


async def _commit_async(group: GroupCommit, engine: Engine, write: AuditWrite) -> int:
    """A coroutine's commit, as the release route makes it: holding no connection."""
    return await group.commit_async(engine, write, CONTEXT)


async def _until(condition: object) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def _committed(engine: Engine) -> dict[int, str]:
    """The chain's entries (seq: detail), once the chain is checked to verify."""
    with engine.connect() as connection:
        assert verify_chain(connection, KEY.public_key(), mac=MAC, store=None).ok
        return {row.seq: row.detail for row in connection.execute(select(audit_entries))}


def test_a_batch_whose_transaction_is_gone_before_its_commit_fails(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If anything ends the batch's transaction under it (its connection closed elsewhere),
    the commit must not pass for a successful one: the batch fails closed."""
    insert = group_module._insert

    def insert_then_lose_the_transaction(connection: Connection, *args: Any) -> None:
        insert(connection, *args)
        connection.rollback()

    monkeypatch.setattr(group_module, "_insert", insert_then_lose_the_transaction)
    result = _commit(GroupCommit(), engine, _write(1, nonce="e" * 32))
    assert isinstance(result, AuditUnavailableError)
    with engine.connect() as connection:
        assert connection.execute(select(audit_entries)).first() is None
        assert connection.execute(select(seen_nonces)).first() is None


def test_a_leader_cancelled_while_its_batch_runs_tells_no_follower_a_false_commit(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leading coroutine is cancelled while its batch thread is between its inserts and its
    commit. Whatever its follower in that batch is told must be what the database holds: an
    entry it is told is committed is in the chain, with its disclosure row and its nonce."""
    inserted, go = threading.Event(), threading.Event()
    insert = group_module._insert

    def insert_then_pause(
        connection: Connection, table: Any, names: Any, rows: list[tuple[Any, ...]]
    ) -> None:
        insert(connection, table, names, rows)
        if any(row[1] == "c1" for row in rows):
            inserted.set()
            go.wait(10)

    monkeypatch.setattr(group_module, "_insert", insert_then_pause)
    group = GroupCommit(wait_s=10)
    results: dict[int, int | Exception] = {}

    def run(n: int) -> None:
        results[n] = _commit(group, engine, _write(n))

    async def main() -> dict[int, int | BaseException]:
        with engine.connect() as blocker:
            # Write 0 leads alone; coroutine 1 then leads a batch of 1 and 2.
            _block(blocker)
            first = threading.Thread(target=run, args=(0,))
            first.start()
            await _until(lambda: group._leading)
            leader = asyncio.create_task(_commit_async(group, engine, _write(1, nonce="1" * 32)))
            await _until(lambda: len(group._queue) == 1)
            follower = asyncio.create_task(_commit_async(group, engine, _write(2, nonce="2" * 32)))
            await _until(lambda: len(group._queue) == 2)
            blocker.rollback()
        await asyncio.to_thread(inserted.wait, 10)
        leader.cancel()
        await asyncio.sleep(0.1)  # the cancelled coroutine unwinds on the loop meanwhile
        go.set()
        outcomes = await asyncio.gather(leader, follower, return_exceptions=True)
        await asyncio.to_thread(first.join)
        return dict(zip((1, 2), outcomes, strict=True))

    outcomes = asyncio.run(main())
    assert results[0] == 1
    assert isinstance(outcomes[1], asyncio.CancelledError)
    seq = outcomes[2]
    assert isinstance(seq, int)
    assert _committed(engine)[seq] == '{"n":2}'
    with engine.connect() as connection:
        assert "c2" in {r.child_id for r in connection.execute(select(disclosures))}
        assert "2" * 32 in {r.nonce for r in connection.execute(select(seen_nonces))}


def test_a_coroutine_cancelled_as_it_starts_to_lead_does_not_stall_the_group(
    engine: Engine,
) -> None:
    group = GroupCommit(wait_s=5)

    async def main() -> int:
        leader = asyncio.create_task(_commit_async(group, engine, _write(1)))
        await asyncio.sleep(0)  # ``leader`` queues and takes the lead
        assert group._leading
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        # The next request commits at once, not after the group's wait.
        async with asyncio.timeout(3):
            return await _commit_async(group, engine, _write(2))

    seq = asyncio.run(main())
    entries = _committed(engine)
    assert entries[seq] == '{"n":2}'
    assert set(entries) == set(range(1, seq + 1))
    assert not group._leading
    assert group._queue == []


def test_a_coroutine_cancelled_right_after_it_is_handed_the_lead_does_not_stall_the_group(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupCommit(wait_s=5)
    results: dict[int, int | Exception] = {}
    to_cancel: list[asyncio.Task[int]] = []
    settle = group_module._settle

    def settle_then_cancel(futures: list[asyncio.Future[None]]) -> None:
        # The loop runs this to wake the follower handed the lead; its cancellation comes
        # right after, before it has started to lead.
        settle(futures)
        for task in to_cancel:
            asyncio.get_running_loop().call_soon(task.cancel)

    monkeypatch.setattr(group_module, "_settle", settle_then_cancel)

    def run(n: int) -> None:
        results[n] = _commit(group, engine, _write(n))

    async def main() -> int:
        with engine.connect() as blocker:
            _block(blocker)
            leader = threading.Thread(target=run, args=(0,))
            leader.start()
            await _until(lambda: group._leading)
            follower = asyncio.create_task(_commit_async(group, engine, _write(1)))
            to_cancel.append(follower)
            await _until(lambda: len(group._queue) == 1)
            blocker.rollback()
        await asyncio.to_thread(leader.join)
        with pytest.raises(asyncio.CancelledError):
            await follower
        async with asyncio.timeout(3):
            return await _commit_async(group, engine, _write(2))

    seq = asyncio.run(main())
    assert results[0] == 1
    entries = _committed(engine)
    assert entries[seq] == '{"n":2}'
    assert set(entries) == set(range(1, seq + 1))
    assert not group._leading
    assert group._queue == []


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_multi_row_nonce_insert_with_one_spent_nonce_on_postgresql(engine: Engine) -> None:
    """One batch spends three nonces in one multi-row INSERT … ON CONFLICT DO NOTHING
    RETURNING, one of them already spent by the batch before it: only that write is a
    replay, besides a repeat inside the batch (which never reaches the insert). The
    end-to-end copies of one release share one nonce, so they never insert more than one."""
    group = GroupCommit()
    spent, fresh, other = "a" * 32, "b" * 32, "c" * 32
    writes = {
        0: _write(0, nonce=spent),  # leads alone, in a batch of its own
        1: _write(1, nonce=fresh),
        2: _write(2, nonce=spent),
        3: _write(3, nonce=other),
        4: _write(4, nonce=fresh),
    }
    results = _hold_lock_and_queue(group, engine, writes)
    assert (results[0], results[1], results[3]) == (1, 2, 4)
    for n in (2, 4):
        replayed = results[n]
        assert isinstance(replayed, AuthenticationError)
        assert replayed.reason == "replayed_nonce"
    entries = _committed(engine)
    assert entries == {1: '{"n":0}', 2: '{"n":1}', 3: '{"n":2}', 4: '{"n":3}', 5: '{"n":4}'}
    with engine.connect() as connection:
        actions = [r.action for r in connection.execute(select(audit_entries).order_by("seq"))]
        assert actions == [
            "keys.release",
            "keys.release",
            "auth.reject",
            "keys.release",
            "auth.reject",
        ]
        audit_seqs = {r.child_id: r.audit_seq for r in connection.execute(select(disclosures))}
        assert audit_seqs == {"c0": 1, "c1": 2, "c3": 4}
        assert {r.nonce for r in connection.execute(select(seen_nonces))} == {spent, fresh, other}


def test_a_device_or_principal_revoked_before_the_batch_commits_is_refused(
    engine: Engine,
) -> None:
    """Revocation between a release's authentication and its batch: no key, a rejection entry
    naming the reason, no disclosure row; a replay is still audited as a replay."""
    now = _now()
    with engine.begin() as connection:
        for principal, revoked in (("a" * 32, None), ("b" * 32, now)):
            connection.execute(
                insert(principals).values(
                    principal_id=principal,
                    kind="staff",
                    display_name="x",
                    roles="educator",
                    created_at=now,
                    revoked_at=revoked,
                )
            )
        for device, principal, revoked in (
            ("1" * 32, "a" * 32, None),  # active
            ("2" * 32, "a" * 32, now),  # device revoked
            ("3" * 32, "b" * 32, None),  # principal revoked
        ):
            connection.execute(
                insert(devices).values(
                    device_id=device,
                    principal_id=principal,
                    name="d",
                    signing_key=bytes(32),
                    receiving_key=bytes(32),
                    created_at=now,
                    revoked_at=revoked,
                )
            )
    context = dataclasses.replace(CONTEXT, active_devices=active_devices)

    def write(n: int, device: str, nonce: str) -> AuditWrite:
        plain = _write(n, nonce=nonce)
        assert plain.claim is not None
        rejected = AuditEvent(
            action="auth.reject", outcome="deny", detail={"n": n, "reason": "replayed_nonce"}
        )
        return dataclasses.replace(plain, claim=NonceClaim(device, nonce, rejected))

    cases = {
        1: write(1, "1" * 32, "1" * 32),
        2: write(2, "2" * 32, "2" * 32),
        3: write(3, "3" * 32, "3" * 32),
        4: write(4, "4" * 32, "4" * 32),  # a device that does not exist
        5: write(5, "2" * 32, "2" * 32),  # the revoked device's nonce again
    }
    group = GroupCommit()
    results: dict[int, int | Exception] = {}
    with engine.connect() as connection:
        for n, item in cases.items():
            try:
                results[n] = group.commit(connection, item, context)
            except AuthenticationError as exc:
                results[n] = exc
    assert isinstance(results[1], int)
    for n, reason in (
        (2, "revoked_device"),
        (3, "revoked_device"),
        (4, "revoked_device"),
        (5, "replayed_nonce"),
    ):
        refused = results[n]
        assert isinstance(refused, AuthenticationError), n
        assert refused.reason == reason, n
    with engine.connect() as connection:
        assert verify_chain(connection, KEY.public_key(), mac=MAC, store=None).ok
        entries = [
            (row.action, row.detail)
            for row in connection.execute(
                select(audit_entries.c.action, audit_entries.c.detail).order_by(audit_entries.c.seq)
            )
        ]
        assert entries[0] == ("keys.release", '{"n":1}')
        assert entries[1:] == [
            ("auth.reject", '{"n":2,"reason":"revoked_device"}'),
            ("auth.reject", '{"n":3,"reason":"revoked_device"}'),
            ("auth.reject", '{"n":4,"reason":"revoked_device"}'),
            ("auth.reject", '{"n":5,"reason":"replayed_nonce"}'),
        ]
        assert [row.child_id for row in connection.execute(select(disclosures))] == ["c1"]
