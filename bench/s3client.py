"""S3 client cost on loopback against moto's server, the figures behind
docs/decisions/0001-s3-client.md.

- The key service's own calls (presign a download, presign a size-bound upload, HEAD, the
  commit's digest GET, DELETE): Carevault's store (``S3Store``: minio-py where it can, boto3
  for size-bound upload URLs) against boto3 alone and minio-py alone.
- The data path clients take: presigned URLs fetched with httpx, against boto3 and minio-py
  holding credentials (which Carevault's clients never do).

Client CPU per request is this process's CPU time (user + system) divided by the number of
requests, so the server's own work does not count; wall-clock rates include the server and
are only comparable to each other on the same machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from minio import Minio

from bench._harness import Record, alternate, median, rate_record, time_record
from tests.servers import S3Server, make_temp_dir, start_s3_server

BENCH = "s3client"
OURS = "carevault-store"
SMALL_SIZE = 1024
LARGE_MIB = 16
_MIB = 1024 * 1024


@dataclass
class _Series:
    """One contender's CPU milliseconds per request, with the wall-clock rate of each round."""

    requests: int
    walls: list[float] = field(default_factory=list)

    def measure(self, operation: Callable[[int], object]) -> Callable[[], float]:
        def one_round() -> float:
            cpu = time.process_time()
            wall = time.perf_counter()
            for index in range(self.requests):
                operation(index)
            self.walls.append(self.requests / (time.perf_counter() - wall))
            return (time.process_time() - cpu) * 1000 / self.requests

        return one_round


def _minio_client(server: S3Server) -> Any:
    return Minio(
        server.endpoint_url.removeprefix("http://"),
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
        region=server.region,
    )


def _minio_get(minio: Any, bucket: str, name: str) -> bytes:
    response = minio.get_object(bucket, name)
    try:
        data: bytes = response.read()
    finally:
        response.close()
        response.release_conn()
    return data


def _compare(
    metric: str,
    operations: dict[str, Callable[[int], object]],
    *,
    ours: str,
    requests: int,
    rounds: int,
    extra: dict[str, object],
) -> Iterator[Record]:
    """Per-request client CPU of ``ours`` against each other contender, plus wall rates;
    alone (minio-py not installed, nothing else to compare), its own figures."""
    series = {name: _Series(requests) for name in operations}
    cpu = alternate({name: series[name].measure(op) for name, op in operations.items()}, rounds)
    if len(operations) == 1:
        yield time_record(
            bench=BENCH,
            metric=f"{metric}_client_cpu",
            value=median(cpu[ours]),
            unit="ms/request",
            baseline=None,
            baseline_value=None,
            ours=ours,
            requests_per_round=requests,
            rounds=rounds,
            **extra,
        )
        yield rate_record(
            bench=BENCH,
            metric=f"{metric}_rate",
            value=median(series[ours].walls),
            unit="requests/s",
            baseline=None,
            baseline_value=None,
            ours=ours,
            **extra,
        )
    for name in operations:
        if name == ours:
            continue
        yield time_record(
            bench=BENCH,
            metric=f"{metric}_client_cpu",
            value=median(cpu[ours]),
            unit="ms/request",
            baseline=name,
            baseline_value=median(cpu[name]),
            ours=ours,
            requests_per_round=requests,
            rounds=rounds,
            **extra,
        )
        yield rate_record(
            bench=BENCH,
            metric=f"{metric}_rate",
            value=median(series[ours].walls),
            unit="requests/s",
            baseline=name,
            baseline_value=median(series[name].walls),
            ours=ours,
            **extra,
        )


def _key_service_calls(
    server: S3Server, minio: Any, *, requests: int, rounds: int, extra: dict[str, object]
) -> Iterator[Record]:
    """The calls the key service makes itself, per record: ours is the store it uses."""
    s3 = server.client()
    store = server.store()
    bucket = server.bucket
    body = os.urandom(SMALL_SIZE)
    names = [f"{i:032x}" for i in range(requests)]
    for name in names:
        s3.put_object(Bucket=bucket, Key=name, Body=body)

    def boto3_digest(name: str) -> bytes:
        stream = s3.get_object(Bucket=bucket, Key=name)["Body"]
        return hashlib.sha256(stream.read()).digest()

    def minio_digest(name: str) -> bytes:
        return hashlib.sha256(_minio_get(minio, bucket, name)).digest()

    def boto3_presign(operation: str, **params: object) -> str:
        url: str = s3.generate_presigned_url(
            operation, Params={"Bucket": bucket, **params}, ExpiresIn=300
        )
        return url

    def recreate(index: int) -> None:
        s3.put_object(Bucket=bucket, Key=names[index], Body=body)

    calls: dict[str, dict[str, Callable[[int], object]]] = {
        "presign_get": {
            OURS: lambda i: store.presign_get(names[i], expires_s=300),
            "boto3": lambda i: boto3_presign("get_object", Key=names[i]),
            "minio": lambda i: minio.presigned_get_object(
                bucket, names[i], expires=timedelta(seconds=300)
            ),
        },
        # minio-py cannot sign a Content-Length into a URL: only boto3 to compare with.
        "presign_put": {
            OURS: lambda i: store.presign_put(names[i], size=SMALL_SIZE, expires_s=300),
            "boto3": lambda i: boto3_presign("put_object", Key=names[i], ContentLength=SMALL_SIZE),
        },
        "head": {
            OURS: lambda i: store.stat(names[i]),
            "boto3": lambda i: s3.head_object(Bucket=bucket, Key=names[i]),
            "minio": lambda i: minio.stat_object(bucket, names[i]),
        },
        "commit_digest_get": {
            OURS: lambda i: store.sha256_if_size(names[i], size=SMALL_SIZE),
            "boto3": lambda i: boto3_digest(names[i]),
            "minio": lambda i: minio_digest(names[i]),
        },
    }
    for metric, operations in calls.items():
        yield from _compare(
            metric, operations, ours=OURS, requests=requests, rounds=rounds, extra=extra
        )
    # A DELETE needs an object to delete: each contender deletes, then puts back (the put is
    # the same boto3 call for all, so it shifts every contender's figure alike).
    deletes: dict[str, Callable[[int], object]] = {
        OURS: lambda i: (store.delete(names[i]), recreate(i)),
        "boto3": lambda i: (s3.delete_object(Bucket=bucket, Key=names[i]), recreate(i)),
        "minio": lambda i: (minio.remove_object(bucket, names[i]), recreate(i)),
    }
    yield from _compare(
        "delete_then_put", deletes, ours=OURS, requests=requests, rounds=rounds, extra=extra
    )


def _small_requests(
    server: S3Server, minio: Any, *, requests: int, rounds: int, extra: dict[str, object]
) -> Iterator[Record]:
    """The data path: ours is a presigned URL fetched with httpx, as Carevault's clients do."""
    s3 = server.client()
    bucket = server.bucket
    body = os.urandom(SMALL_SIZE)
    names = [f"small/{i:04d}" for i in range(requests)]
    for name in names:
        s3.put_object(Bucket=bucket, Key=name, Body=body)
    http = httpx.Client()

    def presigned(method: str, name: str) -> str:
        client_method = "put_object" if method == "PUT" else "get_object"
        url: str = s3.generate_presigned_url(
            client_method, Params={"Bucket": bucket, "Key": name}, ExpiresIn=300
        )
        return url

    puts: dict[str, Callable[[int], object]] = {
        "boto3": lambda i: s3.put_object(Bucket=bucket, Key=names[i], Body=body),
        "presigned_httpx": lambda i: http.put(
            presigned("PUT", names[i]), content=body
        ).raise_for_status(),
    }
    gets: dict[str, Callable[[int], object]] = {
        "boto3": lambda i: s3.get_object(Bucket=bucket, Key=names[i])["Body"].read(),
        "presigned_httpx": lambda i: http.get(presigned("GET", names[i])).raise_for_status(),
    }
    puts["minio"] = lambda i: minio.put_object(bucket, names[i], io.BytesIO(body), SMALL_SIZE)
    gets["minio"] = lambda i: _minio_get(minio, bucket, names[i])
    try:
        for metric, operations in (("small_put", puts), ("small_get", gets)):
            yield from _compare(
                metric,
                operations,
                ours="presigned_httpx",
                requests=requests,
                rounds=rounds,
                extra=extra,
            )
    finally:
        http.close()


def _large_transfer(server: S3Server, *, rounds: int, extra: dict[str, object]) -> Iterator[Record]:
    """The data path: a large object through a presigned URL and httpx against boto3."""
    s3 = server.client()
    bucket = server.bucket
    body = os.urandom(LARGE_MIB * _MIB)
    s3.put_object(Bucket=bucket, Key="large", Body=body)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "large"}, ExpiresIn=3600
    )
    http = httpx.Client(timeout=120)

    def via_httpx() -> float:
        start = time.perf_counter()
        with http.stream("GET", url) as response:
            response.raise_for_status()
            received = sum(len(chunk) for chunk in response.iter_bytes(1024 * 1024))
        assert received == len(body)
        return LARGE_MIB / (time.perf_counter() - start)

    def via_boto3() -> float:
        start = time.perf_counter()
        stream = s3.get_object(Bucket=bucket, Key="large")["Body"]
        received = sum(len(chunk) for chunk in stream.iter_chunks(1024 * 1024))
        assert received == len(body)
        return LARGE_MIB / (time.perf_counter() - start)

    try:
        rates = alternate({"presigned_httpx": via_httpx, "boto3": via_boto3}, rounds)
    finally:
        http.close()
    yield rate_record(
        bench=BENCH,
        metric="large_get_throughput",
        value=median(rates["presigned_httpx"]),
        unit="MiB/s",
        baseline="boto3",
        baseline_value=median(rates["boto3"]),
        ours="presigned_httpx",
        object_mib=LARGE_MIB,
        rounds=rounds,
        **extra,
    )


def run(quick: bool) -> Iterator[Record]:
    requests, rounds = (40, 3) if quick else (200, 7)
    log_dir = make_temp_dir("carevault-bench-s3-")
    proc, server = start_s3_server(log_dir)
    try:
        minio = _minio_client(server)
        extra: dict[str, object] = {"server": "moto (loopback)"}
        yield from _key_service_calls(server, minio, requests=requests, rounds=rounds, extra=extra)
        yield from _small_requests(server, minio, requests=requests, rounds=rounds, extra=extra)
        yield from _large_transfer(server, rounds=rounds, extra=extra)
    finally:
        proc.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
