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
``synchronous=NORMAL`` for docs/decisions/0003-sqlite-durability.md, and on the production
topology (``deploy/topology.py``: PostgreSQL, moto's S3 and KMS, two instances behind nginx
with TLS), started once: 20–30 s on the loaded 2-core machine, too long for ``--quick``'s 30 s:

- ``release_throughput`` with ``database: postgresql, instances: 1`` against ``noop`` through
  the balancer with instance b marked down (the SQLite run's baseline, on PostgreSQL: the same
  server under the same load), and with ``instances: 2`` against ``one-instance``: the
  balancer's configuration is switched (``nginx -s reload``) between alternating runs, and the
  access log shows which instance served each run's requests (``served``);
- the throughput records name the CPU each process spent per request (``cpu_ms_per_request_*``:
  the instances, PostgreSQL with its backends, nginx, the load generators), the machine's busy
  cores, others' load included (``machine_busy_cores_*``), and the cores the topology and its
  generators used (``our_cores_*``);
- ``audit_batch_entries`` at concurrency 4, 16 and 64 on two instances: the group commit's
  mean batch (entries of one batch share its ``at``), the release rate and p99, and how often
  a backend was seen waiting for a lock (``samples_with_lock_waiter``; ``lock_wait_share`` of
  the active backends): the audit head row is the one row every release's batch locks;
- ``audit_head_entries_per_s`` for batches of 1, 16, 64 and 256: four writers appending to the
  topology's chain back to back (lock the head, append, commit), the head row's own ceiling.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import multiprocessing
import os
import re
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench._harness import Record, alternate, median, rate_record, time_record
from clients.localservice import LocalService, local_keyservice
from vault.signing import RequestSigner

if TYPE_CHECKING:
    from deploy.topology import Topology

BENCH = "keyservice"
PROCESSES = 4
CONNECTIONS = 4
BULK_ITEMS = 1000
QUICK_RECORDS = 200
TOPOLOGY_RECORDS = 64
# Concurrency levels of the audit batch sweep: 4 generator processes × 1, 4, 16 connections.
SWEEP_CONNECTIONS = (1, 4, 16)
# Batch sizes at which the audit head row's own ceiling is measured (the group commit's
# largest batch is 256).
HEAD_BATCHES = (1, 16, 64, 256)
# After `nginx -s reload`, the time its new workers take over (the old ones finish their
# connections; each run opens new ones).
RELOAD_SETTLE_S = 1.0
LOCK_SAMPLE_S = 0.05
_CODE = re.compile(r"enrolment code .*: (\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Caller:
    base_url: str
    device_id: str
    signing_key: bytes
    audience: str
    # The CA a TLS balancer's certificate is checked with (the topology's); None: the default.
    ca_file: str | None = None

    def verify(self) -> ssl.SSLContext | bool:
        return _verify(self.ca_file)


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


@dataclass(frozen=True)
class Load:
    """One generator process's share of a run: what to ask, from when, until when."""

    caller: Caller
    kind: str
    records: tuple[str, ...]
    start_at: float
    stop_at: float
    connections: int = CONNECTIONS


@dataclass(frozen=True)
class Run:
    """One timed run: its rate, p99, requests done and the generators' CPU seconds."""

    rate: float
    p99_ms: float
    done: int
    generator_cpu_s: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _enrol(
    base_url: str, code: str, ca_file: str | None = None
) -> tuple[Caller, Ed25519PrivateKey]:
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
        verify=_verify(ca_file),
    ).json()
    private = signing.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Caller(base_url, body["device_id"], private, body["audience"], ca_file), signing


def _client(caller: Caller, *, timeout: float = 60.0) -> httpx.Client:
    key = Ed25519PrivateKey.from_private_bytes(caller.signing_key)
    signer = RequestSigner(caller.device_id, key, caller.audience)
    return httpx.Client(
        base_url=caller.base_url, auth=signer, timeout=timeout, verify=caller.verify()
    )


def _setup(service: LocalService, records: int) -> tuple[Caller, list[str]]:
    """An educator assigned to one child, with ``records`` committed records. The admin
    proposes the assignment and the host approves it (the two-person rule)."""
    base_url = service.base_url
    ca_file = service.env.get("SSL_CERT_FILE")
    admin, _ = _enrol(base_url, service.admin_code, ca_file)
    with _client(admin) as http:
        child = http.post("/v1/admin/children", json={"display_name": "Bench"}).json()["child_id"]
        staff = http.post(
            "/v1/admin/principals",
            json={"kind": "staff", "display_name": "Bench", "roles": ["educator"]},
        ).json()["principal_id"]
        # The first device is enrolled before the assignment: a code an admin issued alone
        # is stale once its person has read rights.
        code = http.post(f"/v1/admin/principals/{staff}/enrolment-codes").json()["code"]
        educator, _ = _enrol(base_url, code, ca_file)
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


def _generate(load: Load) -> tuple[int, list[float], int, float]:
    """Run in a generator process: (requests done, latencies in s, failures, CPU seconds)."""
    cpu = time.process_time()
    done, latencies, failures = asyncio.run(_generate_async(load))
    return done, latencies, failures, time.process_time() - cpu


async def _generate_async(load: Load) -> tuple[int, list[float], int]:
    key = Ed25519PrivateKey.from_private_bytes(load.caller.signing_key)
    signer = RequestSigner(load.caller.device_id, key, load.caller.audience)
    latencies: list[float] = []
    failures = 0
    connections = load.connections
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=load.caller.base_url,
        auth=signer,
        limits=limits,
        timeout=60.0,
        verify=load.caller.verify(),
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
                    index += connections
                    body = {"items": [{"record_id": record, "version": 1}]}
                    started = time.perf_counter()
                    response = await http.post("/v1/keys/release", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1

        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        await asyncio.gather(*(worker(i) for i in range(connections)))
    return len(latencies), latencies, failures


def _ready(_: int) -> None:
    """A task whose only work is the generator process's start."""


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _run_load(
    pool: ProcessPoolExecutor,
    caller: Caller,
    kind: str,
    records: list[str],
    duration: float,
    *,
    connections: int = CONNECTIONS,
) -> Run:
    """One run at concurrency ``PROCESSES × connections`` (16 unless told)."""
    start_at = time.time() + 0.5
    futures = [
        pool.submit(
            _generate,
            Load(
                caller,
                kind,
                tuple(records[i::PROCESSES]),
                start_at,
                start_at + duration,
                connections,
            ),
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
    return Run(done / duration, _p99(latencies) * 1000, done, sum(r[3] for r in results))


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


def _store(seen: dict[str, list[float]], name: str, result: Run) -> float:
    """Keep a run's p99 aside and hand its throughput to ``alternate``."""
    seen.setdefault(name, []).append(result.p99_ms)
    return result.rate


# --- the production topology ----------------------------------------------------------------


def _topology_service(running: Topology) -> LocalService:
    """The balancer's URL with instance a's host settings, bootstrapped: what ``_setup``
    wants."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CAREVAULT_", "AWS_"))},
        **running.instance_env("a"),
        "SSL_CERT_FILE": running.ca_file,
    }
    proc = running.proc("keyservice-a")
    service = LocalService(
        running.url, Path(env["CAREVAULT_DATA_DIR"]), "", Path(proc.log), proc.pid, env
    )
    code = _CODE.search(service.host("bootstrap"))
    if code is None:
        raise RuntimeError("the topology's bootstrap printed no enrolment code")
    return LocalService(
        service.base_url, service.data_dir, code.group(1), service.log_path, proc.pid, env
    )


class _Balancer:
    """Switches nginx between both instances and instance a alone (b marked ``down``)."""

    def __init__(self, running: Topology) -> None:
        self.running = running
        self.conf = Path(running.base_dir) / "nginx" / "nginx.conf"
        self.both = self.conf.read_text()
        port_b = httpx.URL(running.instance_urls["b"]).port
        line = f"server 127.0.0.1:{port_b} max_fails=1 fail_timeout=5s;"
        if line not in self.both:
            raise RuntimeError(f"no `{line}` in the topology's {self.conf}")
        self.one = self.both.replace(line, f"server 127.0.0.1:{port_b} down;")
        self.instances = 2

    def use(self, instances: int) -> None:
        if instances != self.instances:
            self.conf.write_text(self.one if instances == 1 else self.both)
            os.kill(self.running.proc("nginx").pid, signal.SIGHUP)
            time.sleep(RELOAD_SETTLE_S)
            self.instances = instances

    def served(self) -> dict[str, int]:
        """Requests answered so far, by the instance that served them."""
        from deploy.topology import served

        counts: dict[str, int] = {}
        for request in served(self.running):
            for name in request.instances[-1:]:
                counts[name] = counts.get(name, 0) + 1
        return counts


def _group_cpu_s(leaders: set[int]) -> dict[int, float]:
    """CPU seconds by topology process: each started process is the leader of its group, and
    a process counts for the leader of its group or its parent (PostgreSQL's backends make
    groups of their own); a leader also counts its reaped children (backends that exited)."""
    tick = os.sysconf("SC_CLK_TCK")
    used_by: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        pid, parent, group = int(stat.parent.name), int(fields[1]), int(fields[2])
        leader = group if group in leaders else parent if parent in leaders else None
        if leader is None:
            continue
        used = int(fields[11]) + int(fields[12])
        if pid == leader:
            used += int(fields[13]) + int(fields[14])
        used_by[leader] = used_by.get(leader, 0.0) + used / tick
    return used_by


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every process, other helpers' too)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class _Usage:
    """CPU per request of each process group over a contender's runs."""

    cpu_s: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    machine_busy_s: float = 0.0
    wall_s: float = 0.0
    served: dict[str, int] = field(default_factory=dict)

    def per_request_ms(self) -> dict[str, float]:
        return {
            name: round(used * 1000 / max(1, self.requests), 3)
            for name, used in sorted(self.cpu_s.items())
        }

    def busy_cores(self) -> float:
        return round(self.machine_busy_s / self.wall_s, 2) if self.wall_s else 0.0

    def our_cores(self) -> float:
        """Cores the topology and the generators used: the rest of the busy cores is others'."""
        return round(sum(self.cpu_s.values()) / self.wall_s, 2) if self.wall_s else 0.0


def _measured_run(
    running: Topology,
    balancer: _Balancer,
    usage: _Usage,
    run_it: Callable[[], Run],
) -> Run:
    groups = {proc.name: proc.pid for proc in running.procs}
    leaders = set(groups.values())
    seen = balancer.served()
    before, busy, wall = _group_cpu_s(leaders), _machine_busy_s(), time.monotonic()
    result = run_it()
    after, busy_after, wall_after = _group_cpu_s(leaders), _machine_busy_s(), time.monotonic()
    for name, pgid in groups.items():
        used = after.get(pgid, 0.0) - before.get(pgid, 0.0)
        usage.cpu_s[name] = usage.cpu_s.get(name, 0.0) + used
    usage.cpu_s["generators"] = usage.cpu_s.get("generators", 0.0) + result.generator_cpu_s
    usage.requests += result.done
    usage.machine_busy_s += busy_after - busy
    usage.wall_s += wall_after - wall
    for name, count in balancer.served().items():
        usage.served[name] = usage.served.get(name, 0) + count - seen.get(name, 0)
    return result


class _LockSampler:
    """Samples pg_stat_activity: how many of the key service's backends are active, and how
    many of those wait for a lock (the audit head row is the one every release batch takes)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.active = 0
        self.waiting = 0
        self.samples_with_waiter = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self._stop.wait(LOCK_SAMPLE_S):
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE state = 'active'),"
                    " count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock')"
                    " FROM pg_stat_activity"
                    " WHERE datname = 'carevault' AND pid <> pg_backend_pid()"
                ).fetchone()
                active, waiting = row if row else (0, 0)
                self.active += active
                self.waiting += waiting
                self.samples += 1
                self.samples_with_waiter += 1 if waiting else 0


def _audit_batches(conninfo: str, after_seq: int) -> tuple[int, list[int]]:
    """The chain's last seq, and the sizes of the release batches after ``after_seq``: runs of
    consecutive release entries sharing one ``at``."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT seq, at, action FROM audit_entries WHERE seq > %s ORDER BY seq", (after_seq,)
        ).fetchall()
    sizes: list[int] = []
    previous = None
    for _, at, action in rows:
        if action != "keys.release":
            previous = None
            continue
        if at == previous:
            sizes[-1] += 1
        else:
            sizes.append(1)
        previous = at
    last = rows[-1][0] if rows else after_seq
    return last, sizes


def _measure_topology(*, duration: float, rounds: int, sweep: bool) -> Iterator[Record]:
    from deploy import topology as topo

    started = time.monotonic()
    running = topo.start()
    try:
        start_s = round(time.monotonic() - started, 1)
        service = _topology_service(running)
        caller, record_ids = _setup(service, TOPOLOGY_RECORDS)
        balancer = _Balancer(running)
        conninfo = running.postgres_url.replace("postgresql+psycopg://", "postgresql://")
        context = multiprocessing.get_context("spawn")
        usage: dict[str, _Usage] = {}
        seen: dict[str, list[float]] = {}

        def contender(name: str, kind: str, instances: int) -> Callable[[], float]:
            def one_run() -> float:
                balancer.use(instances)
                result = _measured_run(
                    running,
                    balancer,
                    usage.setdefault(name, _Usage()),
                    lambda: _run_load(pool, caller, kind, record_ids, duration),
                )
                return _store(seen, name, result)

            return one_run

        with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as pool:
            list(pool.map(_ready, range(PROCESSES)))
            _run_load(pool, caller, "noop", record_ids, 0.5)
            _run_load(pool, caller, "release", record_ids, 0.5)
            runs = alternate(
                {
                    "noop@1": contender("noop@1", "noop", 1),
                    "release@1": contender("release@1", "release", 1),
                    "release@2": contender("release@2", "release", 2),
                },
                rounds,
            )
            sweep_records = (
                list(_sweep(pool, caller, record_ids, balancer, conninfo, duration))
                if sweep
                else []
            )
        if sweep:
            sweep_records += [
                _head_ceiling(running, batch=batch, writers=4, duration=duration)
                for batch in HEAD_BATCHES
            ]
        extra: dict[str, object] = {
            "database": "postgresql",
            "through": "nginx (TLS) on 127.0.0.1",
            "concurrency": PROCESSES * CONNECTIONS,
            "duration_s": duration,
            "rounds": rounds,
            "topology_start_s": start_s,
        }

        def facts(name: str) -> dict[str, object]:
            return {
                f"cpu_ms_per_request_{name.replace('@', '_at_')}": usage[name].per_request_ms(),
                f"served_{name.replace('@', '_at_')}": usage[name].served,
                f"machine_busy_cores_{name.replace('@', '_at_')}": usage[name].busy_cores(),
                f"our_cores_{name.replace('@', '_at_')}": usage[name].our_cores(),
            }

        yield rate_record(
            bench=BENCH,
            metric="release_throughput",
            value=median(runs["release@1"]),
            unit="req/s",
            baseline="noop",
            baseline_value=median(runs["noop@1"]),
            instances=1,
            **extra,
            **facts("release@1"),
            **facts("noop@1"),
        )
        yield time_record(
            bench=BENCH,
            metric="release_p99_ms",
            value=median(seen["release@1"]),
            unit="ms",
            baseline="noop",
            baseline_value=median(seen["noop@1"]),
            instances=1,
            **extra,
        )
        yield rate_record(
            bench=BENCH,
            metric="release_throughput",
            value=median(runs["release@2"]),
            unit="req/s",
            baseline="one-instance",
            baseline_value=median(runs["release@1"]),
            instances=2,
            machine_cores=os.cpu_count(),
            **extra,
            **facts("release@2"),
        )
        yield time_record(
            bench=BENCH,
            metric="release_p99_ms",
            value=median(seen["release@2"]),
            unit="ms",
            baseline="one-instance",
            baseline_value=median(seen["release@1"]),
            instances=2,
            **extra,
        )
        yield from sweep_records
    finally:
        topo.stop(running)


def _sweep(
    pool: ProcessPoolExecutor,
    caller: Caller,
    record_ids: list[str],
    balancer: _Balancer,
    conninfo: str,
    duration: float,
) -> Iterator[Record]:
    """Releases on two instances at growing concurrency: the audit batches and lock waits."""
    balancer.use(2)
    last, _ = _audit_batches(conninfo, 0)
    for connections in SWEEP_CONNECTIONS:
        with _LockSampler(conninfo) as locks:
            result = _run_load(
                pool, caller, "release", record_ids, duration, connections=connections
            )
        last, sizes = _audit_batches(conninfo, last)
        yield {
            "bench": BENCH,
            "metric": "audit_batch_entries",
            "value": round(sum(sizes) / max(1, len(sizes)), 2),
            "unit": "entries/batch",
            "database": "postgresql",
            "instances": 2,
            "concurrency": PROCESSES * connections,
            "duration_s": duration,
            "max_batch": max(sizes, default=0),
            "batches_per_s": round(len(sizes) / duration, 1),
            "release_rate": round(result.rate, 1),
            "release_p99_ms": round(result.p99_ms, 1),
            "lock_wait_share": round(locks.waiting / max(1, locks.active), 3),
            "samples_with_lock_waiter": round(locks.samples_with_waiter / max(1, locks.samples), 3),
            "active_backends_mean": round(locks.active / max(1, locks.samples), 2),
        }


def _head_ceiling(running: Topology, *, batch: int, writers: int, duration: float) -> Record:
    """The audit head row's ceiling: ``writers`` threads append batches of ``batch`` entries
    to the topology's chain back to back, each in one transaction that locks the head, appends
    and commits (what a release batch does under the lock, less its nonce and disclosure rows
    and its revocation check). Entries per second, and the mean transaction time."""
    from sqlalchemy import create_engine

    from keyservice.audit.chain import AuditEvent, append_many, lock_head
    from keyservice.audit.mac import AuditMac
    from keyservice.keyfiles import load_or_create_secret

    mac = AuditMac(load_or_create_secret(Path(running.env["CAREVAULT_AUDIT_MAC_KEY_FILE"])))
    engine = create_engine(running.postgres_url, pool_size=writers)
    events = [
        AuditEvent(action="bench.head", outcome="allow", detail={"i": i}) for i in range(batch)
    ]
    stop_at = time.monotonic() + duration
    transactions: list[float] = []

    def writer() -> None:
        with engine.connect() as connection:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                head = lock_head(connection)
                append_many(connection, events, mac=mac, now=dt.datetime.now(dt.UTC), head=head)
                connection.commit()
                transactions.append(time.perf_counter() - started)

    begun = time.monotonic()
    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(lambda _: writer(), range(writers)))
    elapsed = time.monotonic() - begun
    engine.dispose()
    return {
        "bench": BENCH,
        "metric": "audit_head_entries_per_s",
        "value": round(len(transactions) * batch / elapsed, 1),
        "unit": "entries/s",
        "database": "postgresql",
        "batch": batch,
        "writers": writers,
        "duration_s": duration,
        "transactions_per_s": round(len(transactions) / elapsed, 1),
        "transaction_ms_mean": round(1000 * sum(transactions) / max(1, len(transactions)), 2),
    }


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
            yield from _measure_topology(duration=duration, rounds=rounds, sweep=True)
