"""Group commit of audit entries (decision 0005): concurrent writes chain in order and verify,
each index row carries its own entry's seq, and a failed batch fails every request in it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from keyservice.audit.chain import AuditEvent, Checkpointer
from keyservice.audit.group import AuditWrite, GroupCommit, IndexRows
from keyservice.audit.verify import verify_chain
from keyservice.db import make_engine, upgrade_to_head
from keyservice.db.tables import audit_checkpoints, audit_entries, disclosures
from keyservice.errors import AuditUnavailableError

KEY = Ed25519PrivateKey.generate()
CHECKPOINTER = Checkpointer(KEY, every=5)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def _write(n: int, *, bad: bool = False) -> AuditWrite:
    # A disclosure row without its basis fails the insert, and with it the transaction.
    row: dict[str, object] = {
        "child_id": f"c{n}",
        "record_id": "r",
        "version": 1,
        "principal_id": "p",
        "at": _now(),
    }
    if not bad:
        row["basis"] = "assignment"
    return AuditWrite(
        AuditEvent(action="keys.release", outcome="allow", detail={"n": n}),
        (IndexRows(disclosures, [row]),),
    )


def _commit(group: GroupCommit, engine: Engine, write: AuditWrite) -> int | Exception:
    with engine.connect() as connection:
        try:
            return group.commit(connection, write, clock=_now, checkpointer=CHECKPOINTER)
        except AuditUnavailableError as exc:
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
        assert verify_chain(connection, KEY.public_key()).ok
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
        blocker.execute(select(audit_entries.c.seq))
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
        assert verify_chain(connection, KEY.public_key()).ok
    # The group recovers: the next request leads and commits.
    assert _commit(group, engine, _write(9)) == 2


def _wait_for(condition: object) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.01)
