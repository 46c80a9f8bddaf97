"""Release through a share against release by assignment: ``python -m bench shares``.

One moto S3 server over loopback (a subprocess, as in bench/transfer.py) and one key service
process on it (SQLite, synchronous FULL). A child with a DSL and an educator assigned, a
guardian who consented to share observations with two outside recipients, and records the
DSL made; the DSL shares them with each recipient (issue 14). Figures, contenders alternating
rounds in the same process run, medians over rounds:

- ``share_release_throughput`` (req/s): single-record ``POST /v1/keys/release`` by an outside
  recipient through an uncapped share, 4 generator processes × 4 connections = concurrency
  16, each request freshly signed, against ``assignment-release``: the same requests for the
  same records by the assigned educator;
- ``capped_release_p99_ms``: the 99th percentile latency of releases through a share with a
  download cap, against the ``assignment-release`` p99 of the same rounds (ratio = baseline /
  ours). Every request is one the cap counts (see ``_pair``);
- ``share_get_throughput`` (MiB/s of plaintext): the recipient fetches a 10-record share of
  1 MiB records end to end with ``Client.get_share`` into an empty directory (the share
  opened and its keys released in the same signed request, ``POST /v1/shares/{id}/open``;
  each record downloaded, verified against its committed size and digest, decrypted to a
  file, hashed into the manifest; ``FETCHERS`` of them at a time), against ``plain-s3``: the
  same 10 objects fetched with presigned GETs from the same bucket to files, as many at a
  time (``concurrency`` in the figure's line).

The shares are made with ``Client.create_share``.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._harness import (
    Record,
    alternate,
    median,
    plain_s3_gets,
    rate_record,
    seconds,
    time_record,
)
from bench.transfer import S3_KEYS, _moto, _s3_client
from clients.localservice import LocalService, local_keyservice
from vault.client import Client, DeviceIdentity, EnrolmentCode
from vault.client.shares import FETCHERS
from vault.signing import RequestSigner

BENCH = "shares"
MIB = 1 << 20
PROCESSES = 4
CONNECTIONS = 4
GET_RECORDS = 10
# Large enough never to run out: each record version is counted once per device per bench.
CAP = 1000


@dataclass(frozen=True)
class Signer:
    """What a generator process needs to sign as one device (picklable)."""

    device_id: str
    signing_key: bytes
    audience: str


@dataclass(frozen=True)
class Load:
    """One generator process's part of a run. Worker ``w`` of the run sends its ``i``-th
    request as pair ``first + w + CONCURRENCY * i``, which ``_pair`` maps to a device and a
    record; ``capped`` says whether pairs must never repeat (and how many there are)."""

    base_url: str
    devices: tuple[Signer, ...]
    records: tuple[str, ...]
    process: int
    first: int
    capped: bool
    start_at: float
    stop_at: float


@dataclass(frozen=True)
class Bench:
    """What the figures need of the setup."""

    service: LocalService
    educator: Signer
    recipient: Signer
    capped_devices: tuple[Signer, ...]
    capped_share: str
    records: tuple[str, ...]
    recipient_identity: DeviceIdentity
    dsl_identity: DeviceIdentity
    get_share: str
    s3: Any
    bucket: str
    setup_s: dict[str, float]


CONCURRENCY = PROCESSES * CONNECTIONS


def _signer(identity: DeviceIdentity) -> Signer:
    raw = identity.keys.signing_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Signer(identity.device_id, raw, identity.audience)


def _enrol_new(service: LocalService, admin: Client, **principal: Any) -> tuple[str, Client]:
    """A new principal and its first device, enrolled before it has any rights (an admin's
    code is stale once its person may read)."""
    principal_id = admin.create_principal(**principal)
    issued = admin.enrolment_code(principal_id)
    if not isinstance(issued, EnrolmentCode):
        raise RuntimeError("a new person's first code needed an approval")
    client, _ = Client.enrol(service.base_url, issued.code, "bench device")
    return principal_id, client


def _payload(size: int) -> bytes:
    return os.urandom(size)


def _put_records(
    identity: DeviceIdentity, child: str, work: Path, sizes: Sequence[int]
) -> list[tuple[str, int]]:
    """Observations of ``child`` made by ``identity``'s device, four at a time."""

    def put(index: int) -> tuple[str, int]:
        source = work / f"record-{index}.bin"
        source.write_bytes(_payload(sizes[index]))
        with Client(identity) as client:
            ref = client.put(child_ids=[child], category="observation", path=source)
        source.unlink()
        return ref.record_id, ref.version

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(put, range(len(sizes))))


def setup(
    service: LocalService, s3: Any, bucket: str, work: Path, *, records: int, devices: int
) -> Bench:
    """The child, its people, ``records`` small records and 10 of 1 MiB, the shares, and
    ``devices`` devices of the capped share's recipient."""
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 2)
        mark = now

    admin, _ = Client.enrol(service.base_url, service.admin_code, "bench admin")
    with admin:
        child = admin.create_child(display_name="Bench child", room="Bench")
        dsl_id, dsl = _enrol_new(service, admin, kind="staff", display_name="Lead", roles=["dsl"])
        educator_id, educator = _enrol_new(
            service, admin, kind="staff", display_name="Educator", roles=["educator"]
        )
        guardian_id, guardian = _enrol_new(service, admin, kind="guardian", display_name="Parent")
        agency_id, agency = _enrol_new(
            service, admin, kind="external", display_name="Agency", organisation="County"
        )
        capped_id, capped = _enrol_new(
            service, admin, kind="external", display_name="Capped", organisation="Borough"
        )
        proposals = [
            admin.assign(staff_id=dsl_id, child_id=child, role="dsl"),
            admin.assign(staff_id=educator_id, child_id=child, role="educator"),
            admin.add_guardian(guardian_id=guardian_id, child_id=child),
        ]
    phase("people")
    # Each approval is a host command (a fresh interpreter, seconds on a busy machine): run
    # them side by side. (The DSL may not approve the others over the API: 404.)
    with ThreadPoolExecutor(max_workers=len(proposals)) as pool:
        list(pool.map(lambda p: service.approve_at_host(p.proposal_id, force=True), proposals))
    phase("approvals")
    consents = {}
    with guardian:
        for recipient in (agency_id, capped_id):
            made = guardian.record_consent(
                child_id=child,
                given_by=guardian_id,
                recipient_id=recipient,
                categories=["observation"],
                purpose="referral",
            )
            if not isinstance(made, str):
                raise RuntimeError("a guardian's consent needed an approval")
            consents[recipient] = made
    small = _put_records(dsl.identity, child, work, [1024] * records)
    large = _put_records(dsl.identity, child, work, [MIB] * GET_RECORDS)
    small_ids = [record_id for record_id, _ in small]
    phase("records")
    with dsl:
        made = [
            dsl.create_share(
                recipient_id=recipient,
                basis="consent",
                basis_id=consents[recipient],
                purpose="bench",
                record_ids=listed,
                download_cap=cap,
            )
            for recipient, cap, listed in (
                (agency_id, None, small_ids),
                (capped_id, CAP, small_ids),
                (agency_id, None, [record_id for record_id, _ in large]),
            )
        ]
    with capped:
        more = [capped.add_device_code().code for _ in range(devices - 1)]
    extra = [Client.enrol(service.base_url, code, f"bench {i}") for i, code in enumerate(more)]
    for client, _ in extra:
        client.close()
    phase("shares_and_devices")
    educator.close()
    agency.close()
    return Bench(
        service=service,
        educator=_signer(educator.identity),
        recipient=_signer(agency.identity),
        capped_devices=tuple(_signer(i) for i in [capped.identity, *(i for _, i in extra)]),
        capped_share=made[1].share_id,
        records=tuple(small_ids),
        recipient_identity=agency.identity,
        dsl_identity=dsl.identity,
        get_share=made[2].share_id,
        s3=s3,
        bucket=bucket,
        setup_s=phases,
    )


# --- release load -------------------------------------------------------------------------


def _pair(index: int, devices: int, records: int) -> tuple[int, int]:
    """The device and record of the ``index``-th capped request of the bench.

    A device asking again for a record version it was counted for within 10 minutes is not
    counted again (the grace window for dropped connections), and that path skips the
    conditional update and its insert. To measure the counted path every capped request of
    the whole bench is a (device, record) pair never asked before: index → (index mod
    devices, index div devices) is one-to-one below devices × records, and the runs take
    consecutive slices of it. Resetting the count rows between rounds behind the service's
    back was the alternative; this keeps the service's database its own."""
    if index >= devices * records:
        raise RuntimeError("the capped runs used every (device, record) pair: add devices")
    return index % devices, index // devices


def _generate(load: Load) -> tuple[list[float], int, int]:
    """Run in a generator process: (latencies in s, failures, the highest pair index + 1)."""
    return asyncio.run(_generate_async(load))


async def _generate_async(load: Load) -> tuple[list[float], int, int]:
    signers = [
        RequestSigner(d.device_id, Ed25519PrivateKey.from_private_bytes(d.signing_key), d.audience)
        for d in load.devices
    ]
    latencies: list[float] = []
    failures = 0
    reached = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=load.base_url, limits=limits, timeout=60.0) as http:

        async def worker(connection: int) -> None:
            nonlocal failures, reached
            worker_index = load.process * CONNECTIONS + connection
            sent = 0
            while time.time() < load.stop_at:
                index = load.first + worker_index + CONCURRENCY * sent
                sent += 1
                if load.capped:
                    device, record = _pair(index, len(signers), len(load.records))
                else:
                    device, record = 0, index % len(load.records)
                reached = max(reached, index + 1)
                body = {"items": [{"record_id": load.records[record], "version": 1}]}
                started = time.perf_counter()
                response = await http.post("/v1/keys/release", json=body, auth=signers[device])
                latencies.append(time.perf_counter() - started)
                granted = response.status_code == 200 and all(
                    r["status"] == "granted" for r in response.json()["results"]
                )
                if not granted:
                    failures += 1

        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    return latencies, failures, reached


def _ready(_: int) -> None:
    """A task whose only work is the generator process's start."""


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Loads:
    """Runs of concurrent single-record releases; remembers where the capped pairs are."""

    def __init__(self, pool: ProcessPoolExecutor, bench: Bench) -> None:
        self._pool = pool
        self._bench = bench
        self.capped_sent = 0
        self._next_pair = 0

    def run(self, contender: str, duration: float, *, warm_up: bool = False) -> tuple[float, float]:
        """Requests per second and p99 latency (ms) of one run at concurrency 16. A warm-up
        run may finish no request (its processes woke after its end on a busy machine)."""
        bench = self._bench
        devices = {
            "assignment-release": (bench.educator,),
            "share-release": (bench.recipient,),
            "capped-share-release": bench.capped_devices,
        }[contender]
        capped = contender == "capped-share-release"
        start_at = time.time() + 0.2
        futures = [
            self._pool.submit(
                _generate,
                Load(
                    base_url=bench.service.base_url,
                    devices=devices,
                    records=bench.records,
                    process=process,
                    first=self._next_pair if capped else 0,
                    capped=capped,
                    start_at=start_at,
                    stop_at=start_at + duration,
                ),
            )
            for process in range(PROCESSES)
        ]
        results = [future.result() for future in futures]
        failures = sum(r[1] for r in results)
        if failures:
            raise RuntimeError(f"{failures} {contender} requests were not granted")
        latencies = [latency for r in results for latency in r[0]]
        if capped:
            self.capped_sent += len(latencies)
            self._next_pair = max(self._next_pair, *(r[2] for r in results))
        if not latencies:
            if warm_up:
                return 0.0, 0.0
            raise RuntimeError(f"no {contender} request finished in {duration} s")
        return len(latencies) / duration, _p99(latencies) * 1000


def _counted(bench: Bench) -> int:
    """Downloads the capped share counted so far, as its creator sees them."""
    with Client(bench.dsl_identity) as dsl:
        shown = dsl.share(bench.capped_share)
    return sum(item.used for item in shown.items)


def releases(bench: Bench, *, duration: float, rounds: int) -> Iterator[Record]:
    """``share_release_throughput`` and ``capped_release_p99_ms``, alternating with the
    assignment baseline."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as pool:
        # Start every generator process before the first timed run.
        list(pool.map(_ready, range(PROCESSES)))
        loads = Loads(pool, bench)
        for contender in ("assignment-release", "share-release", "capped-share-release"):
            loads.run(contender, min(duration, 0.3), warm_up=True)  # warm every path up
        p99s: dict[str, list[float]] = {}

        def timed(name: str) -> float:
            throughput, p99 = loads.run(name, duration)
            p99s.setdefault(name, []).append(p99)
            return throughput

        names = ("assignment-release", "share-release", "capped-share-release")
        runs = alternate({name: functools.partial(timed, name) for name in names}, rounds)
    counted = _counted(bench)
    if counted != loads.capped_sent:
        raise RuntimeError(
            f"the capped share counted {counted} of {loads.capped_sent} releases: "
            "the bench measured the grace path, not the counted one"
        )
    extra = {"concurrency": CONCURRENCY, "duration_s": duration, "rounds": rounds}
    yield rate_record(
        bench=BENCH,
        metric="share_release_throughput",
        value=median(runs["share-release"]),
        unit="req/s",
        baseline="assignment-release",
        baseline_value=median(runs["assignment-release"]),
        records=len(bench.records),
        **extra,
    )
    yield time_record(
        bench=BENCH,
        metric="capped_release_p99_ms",
        value=median(p99s["capped-share-release"]),
        unit="ms",
        baseline="assignment-release",
        baseline_value=median(p99s["assignment-release"]),
        capped_req_per_s=round(median(runs["capped-share-release"]), 1),
        counted=counted,
        setup_s=bench.setup_s,
        devices=len(bench.capped_devices),
        cap=CAP,
        **extra,
    )


# --- fetching a share ---------------------------------------------------------------------


def _blob_names(bench: Bench) -> list[str]:
    """The object names of the 10 large records' ciphertexts: the only objects over 1 MiB."""
    listed = bench.s3.list_objects_v2(Bucket=bench.bucket).get("Contents", [])
    names = [item["Key"] for item in listed if item["Size"] > MIB]
    if len(names) != GET_RECORDS:
        raise RuntimeError(f"expected {GET_RECORDS} large objects in the bucket, saw {len(names)}")
    return names


def share_get(bench: Bench, work: Path, *, rounds: int) -> Iterator[Record]:
    """``share_get_throughput``: the recipient's 10-record share end to end against plain
    GETs."""
    names = _blob_names(bench)
    ours_dir, plain_dir = work / "ours", work / "plain"
    plain_dir.mkdir(exist_ok=True)
    plaintext = GET_RECORDS * MIB / MIB
    with (
        httpx.Client(timeout=httpx.Timeout(300.0)) as http,
        Client(bench.recipient_identity, blob_client=http) as recipient,
    ):

        def ours() -> float:
            # An empty directory each time: a rerun into the same one would skip everything.
            shutil.rmtree(ours_dir, ignore_errors=True)

            def fetch() -> None:
                got = recipient.get_share(bench.get_share, out_dir=ours_dir)
                if len(got.fetched) != GET_RECORDS:
                    raise RuntimeError("get_share did not fetch the whole share")

            return plaintext / seconds(fetch)

        def plain() -> float:
            wanted = [(name, plain_dir / name) for name in names]

            def fetch() -> None:
                plain_s3_gets(http, bench.s3, bench.bucket, wanted, concurrency=FETCHERS)

            return plaintext / seconds(fetch)

        contenders = {"share-get": ours, "plain-s3": plain}
        for warm_up in contenders.values():
            warm_up()
        gets = alternate(contenders, rounds)
    yield rate_record(
        bench=BENCH,
        metric="share_get_throughput",
        value=median(gets["share-get"]),
        unit="MiB/s",
        baseline="plain-s3",
        baseline_value=median(gets["plain-s3"]),
        records=GET_RECORDS,
        record_mib=1,
        rounds=rounds,
        concurrency=FETCHERS,
        releases="Client.get_share (share opened with its first release: one round trip)",
    )


# --- the whole bench ----------------------------------------------------------------------


def measure(
    work: Path, *, records: int, devices: int, duration: float, rounds: int, get_rounds: int
) -> Iterator[Record]:
    """Start moto and the key service, set up, and yield the three figures."""
    with _moto() as s3_url:
        s3 = _s3_client(s3_url)
        bucket = f"bench-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)
        env = {
            **S3_KEYS,
            "CAREVAULT_BLOB_STORE": f"s3://{bucket}",
            "CAREVAULT_S3_ENDPOINT_URL": s3_url,
        }
        with local_keyservice(work / "service", extra_env=env) as service:
            bench = setup(service, s3, bucket, work, records=records, devices=devices)
            yield from releases(bench, duration=duration, rounds=rounds)
            yield from share_get(bench, work, rounds=get_rounds)


def run(quick: bool) -> Iterator[Record]:
    # The capped runs need devices × records above every capped request of the bench
    # (about 300 req/s here); _pair raises if they run out.
    records, devices, duration, rounds, get_rounds = (
        (48, 32, 1.0, 2, 3) if quick else (400, 40, 8.0, 3, 15)
    )
    with tempfile.TemporaryDirectory(prefix="carevault-bench-shares-") as work:
        yield from measure(
            Path(work),
            records=records,
            devices=devices,
            duration=duration,
            rounds=rounds,
            get_rounds=get_rounds,
        )
