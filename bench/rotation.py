"""Rotation jobs: ``python -m bench rotation [--quick]`` (issue 15, part 2).

- ``rewrap_keys_per_s``: a child rotation job over many record key wraps (written straight into
  the catalog), run by one ``JobRunner`` in this process on the embedded default (SQLite,
  synchronous FULL), wraps moved per second, median over rounds (each round rotates the same
  wraps on to the next version). ``blob_bytes_written``: what the blob store grew by meanwhile
  (0: rotation rewraps rows, never blobs). With ``CAREVAULT_BENCH_POSTGRES_URL`` set (an empty
  database), the same on PostgreSQL.
- ``release_throughput_during_rotation`` (req/s) against ``release-idle``: single-record
  releases by the child's educator (4 threads, one connection each) to a real key service
  process, while that service's runner rotates the child's key over many wraps, against the
  same load with no job; rounds alternate. ``release_errors_during_rotation``: releases that
  were not granted meanwhile (0).
- ``root_rotation_child_keys_per_s``: a root rotation job rewrapping every child key version,
  with the local key file and with moto's KMS over HTTP; ``kms_calls_per_child_key_version``
  counts the KMS calls the job made (botocore's own events), per child key version, and
  ``kms_calls_per_new_child_key_version`` those of starting a child rotation.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from sqlalchemy import Engine, insert, select

from bench._harness import Record, alternate, median, rate_record, time_record
from bench.transfer import S3_KEYS, _moto
from clients.localservice import local_keyservice
from keyservice.app import build_state
from keyservice.catalog import children
from keyservice.catalog.rotation import start_child_rotation, start_root_rotation
from keyservice.db.tables import child_keys, principals, record_children, records
from keyservice.db.tables import wrapped_record_keys as wraps_table
from keyservice.ids import new_id
from keyservice.jobs import JobRunner
from keyservice.keys import (
    LocalFileRootKeyProvider,
    RootKeyProvider,
    unwrap_child_key,
    wrap_record_key,
)
from keyservice.settings import Settings
from keyservice.state import ServiceState
from vault.client import Client, EnrolmentCode
from vault.format import RecordAttributes

BENCH = "rotation"
CATEGORY = "observation"
INSERT_CHUNK = 5000
RELEASE_THREADS = 4
# The key service's batches while releases go on: short write transactions.
SERVICE_BATCH = 1000


def _add_wraps(
    engine: Engine, root: RootKeyProvider, *, child_id: str, created_by: str, count: int
) -> None:
    """``count`` records of ``child_id`` (catalog rows only) wrapped under its active key."""
    with engine.connect() as connection:
        row = connection.execute(
            select(child_keys.c.version, child_keys.c.wrapped).where(
                child_keys.c.child_id == child_id, child_keys.c.state == "active"
            )
        ).one()
    key = unwrap_child_key(root, child_id=child_id, version=row.version, wrapped=row.wrapped)
    now = datetime.now(UTC)
    for start in range(0, count, INSERT_CHUNK):
        ids = [new_id() for _ in range(min(INSERT_CHUNK, count - start))]
        with engine.begin() as connection:
            connection.execute(
                insert(records),
                [
                    {
                        "record_id": r,
                        "category": CATEGORY,
                        "withheld_from_guardians": False,
                        "created_by": created_by,
                        "created_at": now,
                    }
                    for r in ids
                ],
            )
            connection.execute(
                insert(record_children), [{"record_id": r, "child_id": child_id} for r in ids]
            )
            connection.execute(
                insert(wraps_table),
                [
                    {
                        "record_id": r,
                        "version": 1,
                        "child_id": child_id,
                        "child_key_version": row.version,
                        "wrapped": wrap_record_key(
                            child_key=key,
                            attributes=RecordAttributes.from_hex(
                                record_id=r, version=1, child_ids=[child_id], category=CATEGORY
                            ),
                            record_key=os.urandom(32),
                        ),
                    }
                    for r in ids
                ],
            )


def _state(data_dir: Path, **env: str) -> ServiceState:
    return build_state(
        Settings.from_env(
            {
                "CAREVAULT_DATA_DIR": str(data_dir),
                "CAREVAULT_JOB_BATCH_SIZE": "5000",
                # The job's own speed: no pauses for requests (there are none here).
                "CAREVAULT_JOB_YIELD": "0",
                **env,
            }
        )
    )


def _person(state: ServiceState) -> str:
    principal_id = new_id()
    with state.engine.begin() as connection:
        connection.execute(
            insert(principals).values(
                principal_id=principal_id,
                kind="staff",
                display_name="Bench",
                roles="educator",
                created_at=datetime.now(UTC),
            )
        )
    return principal_id


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _run_child_job(state: ServiceState, runner: JobRunner, child_id: str) -> tuple[float, int]:
    lease = (runner.owner, timedelta(seconds=60))
    with state.engine.begin() as connection:
        started = start_child_rotation(
            connection,
            state.root,
            child_id=child_id,
            started_by=None,
            now=state.clock(),
            lease=lease,
        )
    assert started.job_id is not None
    start = time.perf_counter()
    job = runner.run(started.job_id)
    elapsed = time.perf_counter() - start
    if job is None or job.state != "done":
        raise RuntimeError(f"the child rotation job did not finish: {job}")
    return elapsed, job.done


def rewrap(work: Path, *, wraps: int, rounds: int, database: str | None) -> Iterator[Record]:
    env = {"CAREVAULT_DATABASE_URL": database} if database else {}
    state = _state(work, **env)
    runner = JobRunner(state)
    with state.engine.begin() as connection:
        child = children.create_child(
            connection, state.root, display_name="Bench", room=None, now=state.clock()
        )
    _add_wraps(state.engine, state.root, child_id=child, created_by=_person(state), count=wraps)
    blobs = Path(state.settings.blob_store.removeprefix("local:"))
    before = _tree_bytes(blobs)
    rates = []
    for _ in range(rounds):
        elapsed, done = _run_child_job(state, runner, child)
        if done != wraps:
            raise RuntimeError(f"the job moved {done} wraps of {wraps}")
        rates.append(done / elapsed)
    written = _tree_bytes(blobs) - before
    kind = state.engine.dialect.name
    state.engine.dispose()
    yield rate_record(
        bench=BENCH,
        metric="rewrap_keys_per_s",
        value=median(rates),
        unit="keys/s",
        database=kind,
        wraps=wraps,
        batch=state.settings.job_batch_size,
        rounds=rounds,
        blob_bytes_written=written,
    )
    yield time_record(
        bench=BENCH, metric="blob_bytes_written", value=written, unit="bytes", database=kind
    )


# --- releases while a rotation runs ----------------------------------------------------------


def _load(
    identity: Any, record: tuple[str, int], stop: threading.Event, finished: threading.Semaphore
) -> tuple[int, int]:
    granted = refused = 0
    with Client(identity) as client:
        while not stop.is_set():
            try:
                client._release_one(record[0], record[1], include_url=False)
                granted += 1
            except Exception:
                refused += 1
            finished.release()
    return granted, refused


def _releases(identity: Any, record: tuple[str, int], until: Any) -> tuple[float, int]:
    """Releases per second from RELEASE_THREADS threads until ``until()`` returns and at
    least one release per thread has ended (on a loaded machine a short idle phase could
    otherwise end before any did, and measure nothing); errors."""
    stop = threading.Event()
    finished = threading.Semaphore(0)
    results: list[tuple[int, int]] = []

    def worker() -> None:
        results.append(_load(identity, record, stop, finished))

    threads = [threading.Thread(target=worker) for _ in range(RELEASE_THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        until()
        for _ in range(RELEASE_THREADS):
            finished.acquire(timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - start
    return sum(g for g, _ in results) / elapsed, sum(r for _, r in results)


def during_rotation(work: Path, *, wraps: int, idle_s: float, rounds: int) -> Iterator[Record]:
    env = {
        "CAREVAULT_JOB_BATCH_SIZE": str(SERVICE_BATCH),
        "CAREVAULT_JOB_POLL_SECONDS": "0.05",
        "CAREVAULT_JOB_YIELD": "1",
    }
    with local_keyservice(work / "service", extra_env=env) as service:
        admin, _ = Client.enrol(service.base_url, service.admin_code, "bench admin")
        with admin:
            child = admin.create_child(display_name="Bench child", room="Bench")
            educator_id = admin.create_principal(
                kind="staff", display_name="Educator", roles=["educator"]
            )
            issued = admin.enrolment_code(educator_id)
            if not isinstance(issued, EnrolmentCode):
                raise RuntimeError("a new person's first code needed an approval")
            educator, _ = Client.enrol(service.base_url, issued.code, "bench device")
            service.approve_at_host(
                admin.assign(staff_id=educator_id, child_id=child, role="educator").proposal_id,
                force=True,
            )
            source = work / "record.bin"
            source.write_bytes(os.urandom(1024))
            with educator:
                ref = educator.put(child_ids=[child], category=CATEGORY, path=source)
            engine_url = service.env.get(
                "CAREVAULT_DATABASE_URL", f"sqlite:///{service.data_dir / 'carevault.db'}"
            )
            from sqlalchemy import create_engine

            engine = create_engine(engine_url)
            root = LocalFileRootKeyProvider(service.data_dir / "root.key")
            _add_wraps(engine, root, child_id=child, created_by=educator_id, count=wraps)
            engine.dispose()
            errors = 0
            job_rates: list[int] = []

            def idle() -> float:
                rate, _ = _releases(
                    educator.identity, (ref.record_id, ref.version), lambda: time.sleep(idle_s)
                )
                return rate

            def rotating() -> float:
                nonlocal errors
                started = admin.rotate("child", child_id=child)
                assert started.job is not None
                job_id = started.job.job_id

                def until_done() -> None:
                    while admin.job(job_id).running:
                        time.sleep(0.02)

                rate, failed = _releases(
                    educator.identity, (ref.record_id, ref.version), until_done
                )
                errors += failed
                if rate == 0:
                    raise RuntimeError("the job ended before any release did: raise wraps")
                finished = admin.job(job_id)
                if finished.done != wraps + 1:
                    raise RuntimeError(f"the job moved {finished.done} wraps of {wraps + 1}")
                job_rates.append(round(finished.rate_per_s or 0.0))
                return rate

            results = alternate({"during": rotating, "release-idle": idle}, rounds)
    yield rate_record(
        bench=BENCH,
        metric="release_throughput_during_rotation",
        value=median(results["during"]),
        unit="req/s",
        baseline="release-idle",
        baseline_value=median(results["release-idle"]),
        wraps=wraps,
        threads=RELEASE_THREADS,
        rounds=rounds,
        service_rewrap_keys_per_s=job_rates,
        job_batch=SERVICE_BATCH,
        job_yield=1.0,
    )
    yield time_record(
        bench=BENCH, metric="release_errors_during_rotation", value=errors, unit="errors"
    )


# --- root rotation ---------------------------------------------------------------------------


def _children(state: ServiceState, count: int) -> None:
    now = state.clock()
    with state.engine.begin() as connection:
        for _ in range(count):
            children.create_child(connection, state.root, display_name="B", room=None, now=now)


def _root_job(state: ServiceState) -> tuple[float, int]:
    runner = JobRunner(state)
    with state.engine.begin() as connection:
        started = start_root_rotation(
            connection,
            state.root,
            kind="root",
            started_by=None,
            now=state.clock(),
            lease=(runner.owner, timedelta(seconds=60)),
        )
    assert started.job_id is not None
    start = time.perf_counter()
    job = runner.run(started.job_id)
    elapsed = time.perf_counter() - start
    if job is None or job.state != "done":
        raise RuntimeError(f"the root rotation job did not finish: {job}")
    return elapsed, job.done


@contextmanager
def _aws_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in S3_KEYS}
    os.environ.update(S3_KEYS)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def root_rotation(work: Path, *, local_keys: int, kms_keys: int) -> Iterator[Record]:
    state = _state(work / "file")
    _children(state, local_keys)
    elapsed, done = _root_job(state)
    state.engine.dispose()
    yield rate_record(
        bench=BENCH,
        metric="root_rotation_child_keys_per_s",
        value=done / elapsed,
        unit="keys/s",
        provider="file",
        child_key_versions=done,
    )
    with _moto() as endpoint, _aws_env():
        kms = boto3.client("kms", endpoint_url=endpoint, region_name=S3_KEYS["AWS_REGION"])
        key_id = kms.create_key(Description="carevault bench root key")["KeyMetadata"]["KeyId"]
        state = _state(
            work / "kms",
            CAREVAULT_ROOT_KEY=f"kms:{key_id}",
            CAREVAULT_KMS_ENDPOINT_URL=endpoint,
            CAREVAULT_KMS_REGION=S3_KEYS["AWS_REGION"],
        )
        _children(state, kms_keys)
        calls: list[str] = []
        client = state.root._kms  # type: ignore[attr-defined]
        client.meta.events.register("before-call.kms", lambda model, **_: calls.append(model.name))
        elapsed, done = _root_job(state)
        job_calls = [c for c in calls if c != "RotateKeyOnDemand" and c != "ListKeyRotations"]
        calls.clear()
        with state.engine.begin() as connection:
            child = children.create_child(
                connection, state.root, display_name="B", room=None, now=state.clock()
            )
        calls.clear()
        runner = JobRunner(state)
        with state.engine.begin() as connection:
            start_child_rotation(
                connection,
                state.root,
                child_id=child,
                started_by=None,
                now=state.clock(),
                lease=(runner.owner, timedelta(seconds=60)),
            )
        new_version_calls = len(calls)
        state.engine.dispose()
    yield rate_record(
        bench=BENCH,
        metric="root_rotation_child_keys_per_s",
        value=done / elapsed,
        unit="keys/s",
        provider="kms (moto over HTTP)",
        child_key_versions=done,
        kms_calls_per_child_key_version=round(len(job_calls) / done, 3),
        kms_calls=sorted(set(job_calls)),
        kms_calls_per_new_child_key_version=new_version_calls,
    )


def run(quick: bool) -> Iterator[Record]:
    wraps, rounds, during_wraps, during_rounds, idle_s, local_keys, kms_keys = (
        (50_000, 3, 60_000, 2, 1.0, 2_000, 200)
        if quick
        else (200_000, 5, 200_000, 3, 3.0, 10_000, 1_000)
    )
    with tempfile.TemporaryDirectory(prefix="carevault-bench-rotation-") as work:
        base = Path(work)
        yield from rewrap(base / "rewrap", wraps=wraps, rounds=rounds, database=None)
        postgres = os.environ.get("CAREVAULT_BENCH_POSTGRES_URL")
        if postgres:
            yield from rewrap(base / "rewrap-pg", wraps=wraps, rounds=rounds, database=postgres)
        yield from during_rotation(
            base / "during", wraps=during_wraps, idle_s=idle_s, rounds=during_rounds
        )
        yield from root_rotation(base / "root", local_keys=local_keys, kms_keys=kms_keys)
