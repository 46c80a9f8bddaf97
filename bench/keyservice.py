"""Key release against the service's own HTTP floor: ``python -m bench keyservice``.

A real key service process on its embedded default (SQLite WAL, local blobs, temp dir) and a
load generator in other processes on loopback: 4 processes × 4 connections = concurrency 16,
each request freshly signed, for a fixed duration; contenders alternate rounds.

- ``release_throughput`` (req/s): single-record ``POST /v1/keys/release`` with valid
  signatures, each with its durable audit entry, against ``noop`` = ``GET /v1/noop`` on the
  same server under the same load;
- ``release_p99_ms``: the 99th percentile latency of the same runs (ratio = noop / ours);
- ``bulk_release_keys_per_s``: 1,000-record releases, one connection, granted keys per
  second (no baseline: the target is 20,000 keys/s on one worker). ``--quick`` uses 200
  records (``items_per_request`` says so): creating them through the API dominates its time,
  the local store's durable PUT costing about 25 ms each.

With ``--full`` runs (not ``--quick``) the release throughput is also measured with SQLite
``synchronous=NORMAL`` for docs/decisions/0003-sqlite-durability.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench._harness import Record, alternate, median, rate_record, time_record
from clients.localservice import LocalService, local_keyservice
from vault.signing import RequestSigner

BENCH = "keyservice"
PROCESSES = 4
CONNECTIONS = 4
BULK_ITEMS = 1000
QUICK_RECORDS = 200


@dataclass(frozen=True)
class Caller:
    base_url: str
    device_id: str
    signing_key: bytes
    audience: str


@dataclass(frozen=True)
class Load:
    """One generator process's share of a run: what to ask, from when, until when."""

    caller: Caller
    kind: str
    records: tuple[str, ...]
    start_at: float
    stop_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _enrol(base_url: str, code: str) -> tuple[Caller, Ed25519PrivateKey]:
    signing = Ed25519PrivateKey.generate()
    receiving = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    body = httpx.post(
        f"{base_url}/v1/enrol",
        json={
            "code": code,
            "device_name": "bench",
            "signing_key": _b64(signing.public_key().public_bytes(*raw)),
            "receiving_key": _b64(receiving.public_key().public_bytes(*raw)),
        },
    ).json()
    private = signing.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Caller(base_url, body["device_id"], private, body["audience"]), signing


def _client(caller: Caller, *, timeout: float = 60.0) -> httpx.Client:
    key = Ed25519PrivateKey.from_private_bytes(caller.signing_key)
    signer = RequestSigner(caller.device_id, key, caller.audience)
    return httpx.Client(base_url=caller.base_url, auth=signer, timeout=timeout)


def _setup(service: LocalService, records: int) -> tuple[Caller, list[str]]:
    """An educator assigned to one child, with ``records`` committed records. The admin
    proposes the assignment and the host approves it (the two-person rule)."""
    base_url = service.base_url
    admin, _ = _enrol(base_url, service.admin_code)
    with _client(admin) as http:
        child = http.post("/v1/admin/children", json={"display_name": "Bench"}).json()["child_id"]
        staff = http.post(
            "/v1/admin/principals",
            json={"kind": "staff", "display_name": "Bench", "roles": ["educator"]},
        ).json()["principal_id"]
        # The first device is enrolled before the assignment: a code an admin issued alone
        # is stale once its person has read rights.
        code = http.post(f"/v1/admin/principals/{staff}/enrolment-codes").json()["code"]
        educator, _ = _enrol(base_url, code)
        proposed = http.post(
            "/v1/admin/assignments",
            json={"staff_id": staff, "child_id": child, "role": "educator"},
        )
        proposed.raise_for_status()
    service.approve_at_host(proposed.json()["proposal_id"], force=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        created_ids = list(pool.map(lambda _: _new_record(educator, child), range(records)))
    return educator, created_ids


def _new_record(educator: Caller, child: str) -> str:
    ciphertext = b"bench ciphertext"
    with _client(educator) as http:
        created = http.post(
            "/v1/records",
            json={"child_ids": [child], "category": "observation", "ciphertext_size": 16},
        ).json()
        httpx.put(created["upload"]["url"], content=ciphertext).raise_for_status()
        http.post(
            f"/v1/records/{created['record_id']}/versions/1/commit",
            json={
                "ciphertext_size": len(ciphertext),
                "ciphertext_sha256": _b64(hashlib.sha256(ciphertext).digest()),
                "encrypted_metadata": _b64(b"metadata"),
            },
        ).raise_for_status()
    return str(created["record_id"])


def _generate(load: Load) -> tuple[int, list[float], int]:
    """Run in a generator process: (requests done, latencies in s, failures)."""
    return asyncio.run(_generate_async(load))


async def _generate_async(load: Load) -> tuple[int, list[float], int]:
    key = Ed25519PrivateKey.from_private_bytes(load.caller.signing_key)
    signer = RequestSigner(load.caller.device_id, key, load.caller.audience)
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(
        base_url=load.caller.base_url, auth=signer, limits=limits, timeout=60.0
    ) as http:

        async def worker(offset: int) -> None:
            nonlocal failures
            index = offset
            while time.time() < load.stop_at:
                if load.kind == "noop":
                    started = time.perf_counter()
                    response = await http.get("/v1/noop")
                else:
                    record = load.records[index % len(load.records)]
                    index += CONNECTIONS
                    body = {"items": [{"record_id": record, "version": 1}]}
                    started = time.perf_counter()
                    response = await http.post("/v1/keys/release", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1

        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    return len(latencies), latencies, failures


def _ready(_: int) -> None:
    """A task whose only work is the generator process's start."""


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _run_load(
    pool: ProcessPoolExecutor, caller: Caller, kind: str, records: list[str], duration: float
) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) of one run at concurrency 16."""
    start_at = time.time() + 0.5
    futures = [
        pool.submit(
            _generate,
            Load(caller, kind, tuple(records[i::PROCESSES]), start_at, start_at + duration),
        )
        for i in range(PROCESSES)
    ]
    results = [future.result() for future in futures]
    failures = sum(r[2] for r in results)
    if failures:
        raise RuntimeError(f"{failures} {kind} requests failed during the benchmark")
    done = sum(r[0] for r in results)
    if not done:
        raise RuntimeError(f"no {kind} request finished in {duration} s")
    latencies = [latency for r in results for latency in r[1]]
    return done / duration, _p99(latencies) * 1000


def _bulk(caller: Caller, records: list[str], duration: float) -> float:
    """Granted keys per second from back-to-back releases of every record, one connection."""
    body = {"items": [{"record_id": r, "version": 1} for r in records]}
    granted = 0
    with _client(caller) as http:
        started = time.perf_counter()
        while time.perf_counter() - started < duration:
            results = http.post("/v1/keys/release", json=body).json()["results"]
            granted += sum(1 for r in results if r["status"] == "granted")
        elapsed = time.perf_counter() - started
    return granted / elapsed


def _measure(
    work: Path, *, synchronous: str, duration: float, rounds: int, bulk_items: int | None
) -> Iterator[Record]:
    records = bulk_items or QUICK_RECORDS
    with local_keyservice(
        work / f"service-{synchronous.lower()}",
        extra_env={"CAREVAULT_SQLITE_SYNCHRONOUS": synchronous},
    ) as service:
        caller, record_ids = _setup(service, records)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as pool:
            # Start every generator process (interpreter and imports) before the first timed
            # run: on a busy machine that takes longer than a run's 0.5 s head start.
            list(pool.map(_ready, range(PROCESSES)))
            _run_load(pool, caller, "noop", record_ids, 0.5)  # warm both paths up
            _run_load(pool, caller, "release", record_ids, 0.5)
            runs = alternate(
                {
                    "noop": lambda: _store(
                        runs_seen, "noop", _run_load(pool, caller, "noop", record_ids, duration)
                    ),
                    "release": lambda: _store(
                        runs_seen,
                        "release",
                        _run_load(pool, caller, "release", record_ids, duration),
                    ),
                },
                rounds,
            )
        suffix = "" if synchronous == "FULL" else f"_synchronous_{synchronous.lower()}"
        extra = {
            "concurrency": PROCESSES * CONNECTIONS,
            "duration_s": duration,
            "rounds": rounds,
            "sqlite_synchronous": synchronous,
        }
        yield rate_record(
            bench=BENCH,
            metric=f"release_throughput{suffix}",
            value=median(runs["release"]),
            unit="req/s",
            baseline="noop",
            baseline_value=median(runs["noop"]),
            **extra,
        )
        yield time_record(
            bench=BENCH,
            metric=f"release_p99_ms{suffix}",
            value=median(runs_seen["release"]),
            unit="ms",
            baseline="noop",
            baseline_value=median(runs_seen["noop"]),
            **extra,
        )
        if bulk_items:
            yield rate_record(
                bench=BENCH,
                metric="bulk_release_keys_per_s",
                value=median(_bulk(caller, record_ids, duration) for _ in range(rounds)),
                unit="keys/s",
                items_per_request=bulk_items,
                sqlite_synchronous=synchronous,
            )


runs_seen: dict[str, list[float]] = {}


def _store(seen: dict[str, list[float]], name: str, result: tuple[float, float]) -> float:
    """Keep a run's p99 aside and hand its throughput to ``alternate``."""
    seen.setdefault(name, []).append(result[1])
    return result[0]


def run(quick: bool) -> Iterator[Record]:
    duration, rounds = (2.0, 2) if quick else (10.0, 3)
    with tempfile.TemporaryDirectory(prefix="carevault-bench-keyservice-") as work:
        runs_seen.clear()
        yield from _measure(
            Path(work),
            synchronous="FULL",
            duration=duration,
            rounds=rounds,
            bulk_items=QUICK_RECORDS if quick else BULK_ITEMS,
        )
        if not quick:
            runs_seen.clear()
            yield from _measure(
                Path(work), synchronous="NORMAL", duration=duration, rounds=rounds, bulk_items=None
            )
