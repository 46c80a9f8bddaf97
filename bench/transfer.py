"""Record transfer through Carevault against plain presigned S3: `python -m bench transfer`.

One moto S3 server over loopback (a subprocess) and one key service process configured with
it. Contenders run in alternating rounds with the same httpx client:

- ``put_throughput`` / ``get_throughput`` (MB/s, 64 MiB; 16 MiB with --quick): Carevault
  encrypt + upload + commit, and release + download + verify + decrypt to a file, against
  ``plain-s3``: an unencrypted PUT / GET of the same bytes to the same server through a
  presigned URL (multipart with the same part size when Carevault used multipart);
- ``small_roundtrip_ms`` (100 KiB record, put then get) against ``aws-esdk-kms-s3``, what a
  user would build instead: the AWS Encryption SDK (its default committing suite, ECDSA P-384)
  with a ``StrictAwsKmsMasterKeyProvider`` on moto's KMS and an encryption context naming the
  record, the ciphertext PUT to and GET from the same S3 through presigned URLs (one
  GenerateDataKey, one PUT, one GET, one Decrypt); and against the same with plain S3, with
  ``phases_ms``: Carevault's key service calls and storage requests, each to its response
  headers (a 100 KiB record travels inline through the key service, decision 0030: create,
  commit and release, and no storage request); ``signed_call_ms``: the cheapest signed key
  service call (``GET /v1/me``), the floor under each of the round trip's three;
- ``put_client_cpu_ms`` / ``get_client_cpu_ms``: the CPU this process (the client) spent per
  put / get in those same rounds, against the plain PUT / GET's;
- ``peak_rss_mib``: peak resident memory of a fresh client process that puts and gets a
  1 GiB record (128 MiB with --quick); ``floor_mib`` is the same process idle.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nacl.pwhash.argon2id as argon2id

from bench._harness import (
    Record,
    alternate,
    median,
    peak_rss_of_child,
    plain_s3_get,
    rate_record,
    seconds,
    time_record,
)
from clients.localservice import LocalService, die_with_parent, local_keyservice
from vault.client import Client, DeviceIdentity, EnrolmentCode, load_identity, save_identity

BENCH = "transfer"
MIB = 1 << 20
MB = 1_000_000
S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
PASSPHRASE = "bench passphrase"
RSS_TARGET_MIB = 150


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _moto() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.05)
        yield endpoint
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_KEYS["AWS_DEFAULT_REGION"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@dataclass
class _Setup:
    client: Client
    identity: DeviceIdentity
    child_id: str
    s3: Any
    bucket: str
    http: httpx.Client
    s3_url: str


class _EncryptionSdk:
    """The peer a user would pick for small records: the AWS Encryption SDK with a KMS
    keyring, set up as its documentation says, its KMS client pointed at moto's server."""

    def __init__(self, endpoint: str) -> None:
        import aws_encryption_sdk
        import boto3
        import botocore.session
        from aws_encryption_sdk import CommitmentPolicy, StrictAwsKmsMasterKeyProvider

        region = S3_KEYS["AWS_DEFAULT_REGION"]
        kms = boto3.client(
            "kms",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        )
        key_arn = kms.create_key(Description="bench: the peer's wrapping key")["KeyMetadata"]["Arn"]
        session = botocore.session.Session()
        session.set_credentials(S3_KEYS["AWS_ACCESS_KEY_ID"], S3_KEYS["AWS_SECRET_ACCESS_KEY"])
        # The SDK builds its KMS client itself: botocore takes a service's endpoint from
        # AWS_ENDPOINT_URL_KMS when the client is made, so the variable is set for that moment.
        previous = os.environ.get("AWS_ENDPOINT_URL_KMS")
        os.environ["AWS_ENDPOINT_URL_KMS"] = endpoint
        try:
            self.provider = StrictAwsKmsMasterKeyProvider(
                key_ids=[key_arn], botocore_session=session
            )
            self.provider.add_regional_client(region)
        finally:
            if previous is None:
                del os.environ["AWS_ENDPOINT_URL_KMS"]
            else:
                os.environ["AWS_ENDPOINT_URL_KMS"] = previous
        self.sdk = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        )

    def roundtrip(self, setup: _Setup, name: str, source: Path, dst: Path) -> None:
        ciphertext, _ = self.sdk.encrypt(
            source=source.read_bytes(),
            key_provider=self.provider,
            encryption_context={"record": name},
        )
        put_url = setup.s3.generate_presigned_url(
            "put_object", Params={"Bucket": setup.bucket, "Key": name}, ExpiresIn=600
        )
        setup.http.put(put_url, content=ciphertext).raise_for_status()
        get_url = setup.s3.generate_presigned_url(
            "get_object", Params={"Bucket": setup.bucket, "Key": name}, ExpiresIn=600
        )
        response = setup.http.get(get_url)
        response.raise_for_status()
        plaintext, header = self.sdk.decrypt(source=response.content, key_provider=self.provider)
        if header.encryption_context.get("record") != name:
            raise RuntimeError("the peer's record came back under another name")
        dst.unlink(missing_ok=True)
        dst.write_bytes(plaintext)


def _enrol_staff(service: LocalService) -> tuple[Client, DeviceIdentity, str]:
    """An educator enrolled (before any rights: an admin's code is stale after that) and
    assigned to a child: proposed by the admin, approved at the host."""
    admin, _ = Client.enrol(service.base_url, service.admin_code, "bench admin")
    with admin:
        staff = admin.create_principal(kind="staff", display_name="Bench", roles=["educator"])
        child = admin.create_child(display_name="Bench child", room="Bench")
        issued = admin.enrolment_code(staff)
        if not isinstance(issued, EnrolmentCode):
            raise RuntimeError("a new person's first code needed an approval")
        client, identity = Client.enrol(service.base_url, issued.code, "bench laptop")
        proposal = admin.assign(staff_id=staff, child_id=child, role="educator")
    service.approve_at_host(proposal.proposal_id, force=True)
    return client, identity, child


class _Watch(httpx.BaseTransport):
    """Counts blob PUTs (to learn whether Carevault used multipart and with what parts) and,
    while ``timing`` is on, times each request to its response headers under ``name(request)``
    (requests named None are not timed)."""

    def __init__(self, name: Callable[[httpx.Request], str | None]) -> None:
        self._inner = httpx.HTTPTransport()
        self._name = name
        self.puts = 0
        self.timing = False
        self.times: dict[str, list[float]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.puts += 1
        started = time.perf_counter()
        response = self._inner.handle_request(request)
        name = self._name(request) if self.timing else None
        if name is not None:
            self.times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return response

    def close(self) -> None:
        self._inner.close()


def _blob_request(request: httpx.Request) -> str | None:
    return {"PUT": "upload", "GET": "download"}.get(request.method)


def _key_service_call(request: httpx.Request) -> str | None:
    path = request.url.path
    if request.method != "POST":
        return None
    if path == "/v1/records":
        return "create"
    if path.endswith("/commit"):
        return "commit"
    return "release" if path == "/v1/keys/release" else None


def _plain_put(setup: _Setup, name: str, path: Path, parts: int) -> None:
    size = path.stat().st_size
    s3, bucket = setup.s3, setup.bucket
    with path.open("rb") as src:
        if parts <= 1:
            url = s3.generate_presigned_url(
                "put_object", Params={"Bucket": bucket, "Key": name}, ExpiresIn=600
            )
            setup.http.put(
                url, content=_pieces(src, size), headers={"Content-Length": str(size)}
            ).raise_for_status()
            return
        part_size = -(-size // parts)
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"]
        done = []
        for number in range(1, parts + 1):
            length = min(part_size, size - (number - 1) * part_size)
            url = s3.generate_presigned_url(
                "upload_part",
                Params={"Bucket": bucket, "Key": name, "UploadId": upload_id, "PartNumber": number},
                ExpiresIn=600,
            )
            response = setup.http.put(
                url, content=_pieces(src, length), headers={"Content-Length": str(length)}
            )
            response.raise_for_status()
            done.append({"PartNumber": number, "ETag": response.headers["ETag"]})
        s3.complete_multipart_upload(
            Bucket=bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": done}
        )


def _pieces(src: Any, length: int) -> Iterator[bytes]:
    left = length
    while left > 0:
        piece = src.read(min(MIB, left))
        if not piece:
            return
        left -= len(piece)
        yield piece


def _plain_get(setup: _Setup, name: str, dst: Path) -> None:
    plain_s3_get(setup.http, setup.s3, setup.bucket, name, dst)


def _rss_child(key_file: str, child_id: str, source: str, target: str) -> None:
    identity = load_identity(Path(key_file), PASSPHRASE)
    with Client(identity) as client:
        ref = client.put(child_ids=[child_id], category="photo", path=Path(source))
        client.get(ref.record_id, dst=Path(target))
    if os.path.getsize(target) != os.path.getsize(source):
        raise RuntimeError("the record came back with another size")


def _idle_child(key_file: str) -> None:
    load_identity(Path(key_file), PASSPHRASE)


def _write_file(path: Path, size: int) -> Path:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(block)
        out.write(block[: size % MIB])
    return path


def run(quick: bool) -> Iterator[Record]:
    # 64 MiB puts on the loopback moto vary by ±30 % from one to the next: 15 rounds, not 7.
    big_mib, rounds, rss_mib = (16, 3, 128) if quick else (64, 15, 1024)
    with tempfile.TemporaryDirectory(prefix="carevault-bench-transfer-") as tmp, _moto() as s3_url:
        work = Path(tmp)
        s3 = _s3_client(s3_url)
        bucket = f"bench-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)
        env = {
            **S3_KEYS,
            "CAREVAULT_BLOB_STORE": f"s3://{bucket}",
            "CAREVAULT_S3_ENDPOINT_URL": s3_url,
            # The 1 GiB record's ciphertext is a little over the default 1 GiB cap.
            "CAREVAULT_MAX_UPLOAD_BYTES": str(2 << 30),
        }
        with local_keyservice(work / "service", extra_env=env) as service:
            blobs, calls = _Watch(_blob_request), _Watch(_key_service_call)
            http = httpx.Client(transport=blobs, timeout=httpx.Timeout(300.0))
            client, identity, child = _enrol_staff(service)
            client.close()
            client = Client(identity, blob_client=http, transport=calls)
            setup = _Setup(client, identity, child, s3, bucket, http, s3_url)
            yield from _throughput(setup, blobs, work, big_mib, rounds)
            yield from _small(setup, (blobs, calls), work, rounds * 3)
            yield from _memory(setup, work, rss_mib)
            client.close()
            http.close()


def _throughput(
    setup: _Setup, counter: _Watch, work: Path, size_mib: int, rounds: int
) -> Iterator[Record]:
    source = _write_file(work / "big.bin", size_mib * MIB)
    size = source.stat().st_size
    counter.puts = 0
    probe = setup.client.put(child_ids=[setup.child_id], category="photo", path=source)
    parts = counter.puts
    refs = [probe]

    def ours_put() -> float:
        took = seconds(
            lambda: refs.append(
                setup.client.put(child_ids=[setup.child_id], category="photo", path=source)
            )
        )
        return size / MB / took

    def plain_put() -> float:
        name = secrets.token_hex(16)
        return size / MB / seconds(lambda: _plain_put(setup, name, source, parts))

    cpu: dict[str, list[float]] = {}

    def with_cpu(name: str, run: Callable[[], float]) -> Callable[[], float]:
        """``run``, noting the CPU this process (the client) spent in it, in ms."""

        def measured() -> float:
            started = time.process_time()
            rate = run()
            cpu.setdefault(name, []).append((time.process_time() - started) * 1000)
            return rate

        return measured

    puts = alternate(
        {"carevault": with_cpu("put", ours_put), "plain-s3": with_cpu("plain-put", plain_put)},
        rounds,
    )
    yield rate_record(
        bench=BENCH,
        metric="put_throughput",
        value=median(puts["carevault"]),
        unit="MB/s",
        baseline="plain-s3",
        baseline_value=median(puts["plain-s3"]),
        size_mib=size_mib,
        rounds=rounds,
        parts=parts,
    )
    plain_name = secrets.token_hex(16)
    _plain_put(setup, plain_name, source, parts)
    out = work / "out.bin"

    def ours_get() -> float:
        return (
            size
            / MB
            / seconds(lambda: setup.client.get(probe.record_id, version=probe.version, dst=out))
        )

    def plain_get() -> float:
        return size / MB / seconds(lambda: _plain_get(setup, plain_name, out))

    gets = alternate(
        {"carevault": with_cpu("get", ours_get), "plain-s3": with_cpu("plain-get", plain_get)},
        rounds,
    )
    yield rate_record(
        bench=BENCH,
        metric="get_throughput",
        value=median(gets["carevault"]),
        unit="MB/s",
        baseline="plain-s3",
        baseline_value=median(gets["plain-s3"]),
        size_mib=size_mib,
        rounds=rounds,
    )
    # The client's own CPU per operation (this process; the key service and moto run in
    # others): less noisy on a loaded machine than the rates, and what a device pays.
    for op in ("put", "get"):
        yield time_record(
            bench=BENCH,
            metric=f"{op}_client_cpu_ms",
            value=median(cpu[op]),
            unit="ms",
            baseline="plain-s3",
            baseline_value=median(cpu[f"plain-{op}"]),
            size_mib=size_mib,
            rounds=rounds,
        )
    source.unlink()
    out.unlink(missing_ok=True)


def _small(
    setup: _Setup, watches: tuple[_Watch, _Watch], work: Path, rounds: int
) -> Iterator[Record]:
    """The round trip, and where Carevault's goes: each key service call and storage request
    timed to its response headers (medians, ms), and the cheapest signed call there is."""
    source = _write_file(work / "small.bin", 100 * 1024)
    out = work / "small.out"

    def ours() -> float:
        def roundtrip() -> None:
            ref = setup.client.put(child_ids=[setup.child_id], category="observation", path=source)
            setup.client.get(ref.record_id, version=ref.version, dst=out)

        for watch in watches:
            watch.timing = True
        try:
            return seconds(roundtrip) * 1000
        finally:
            for watch in watches:
                watch.timing = False

    def plain() -> float:
        name = secrets.token_hex(16)

        def roundtrip() -> None:
            _plain_put(setup, name, source, 1)
            _plain_get(setup, name, out)

        return seconds(roundtrip) * 1000

    peer = _EncryptionSdk(setup.s3_url)

    def esdk() -> float:
        name = secrets.token_hex(16)
        return seconds(lambda: peer.roundtrip(setup, name, source, out)) * 1000

    times = alternate({"carevault": ours, "aws-esdk-kms-s3": esdk, "plain-s3": plain}, rounds)
    phases = {name: ms for watch in watches for name, ms in watch.times.items()}
    yield time_record(
        bench=BENCH,
        metric="small_roundtrip_ms",
        value=median(times["carevault"]),
        unit="ms",
        baseline="aws-esdk-kms-s3",
        baseline_value=median(times["aws-esdk-kms-s3"]),
        size_kib=100,
        rounds=rounds,
        peer="aws-encryption-sdk 4, committing suite with ECDSA P-384, KMS (moto) + S3 (moto)",
    )
    yield time_record(
        bench=BENCH,
        metric="small_roundtrip_ms",
        value=median(times["carevault"]),
        unit="ms",
        baseline="plain-s3",
        baseline_value=median(times["plain-s3"]),
        size_kib=100,
        rounds=rounds,
        phases_ms={name: round(median(ms), 2) for name, ms in sorted(phases.items())},
    )
    signed = [seconds(setup.client.whoami) * 1000 for _ in range(rounds * 3)]
    yield time_record(
        bench=BENCH, metric="signed_call_ms", value=median(signed), unit="ms", call="GET /v1/me"
    )


def _memory(setup: _Setup, work: Path, size_mib: int) -> Iterator[Record]:
    key_file = work / "device.key"
    save_identity(
        key_file,
        setup.identity,
        PASSPHRASE,
        opslimit=argon2id.OPSLIMIT_MIN,
        memlimit=argon2id.MEMLIMIT_MIN,
    )
    source = _write_file(work / "huge.bin", size_mib * MIB)
    target = work / "huge.out"
    measure: Callable[[], object] = functools.partial(
        _rss_child, str(key_file), setup.child_id, str(source), str(target)
    )
    peak = peak_rss_of_child(measure)
    floor = peak_rss_of_child(functools.partial(_idle_child, str(key_file)))
    source.unlink()
    target.unlink(missing_ok=True)
    yield time_record(
        bench=BENCH,
        metric="peak_rss_mib",
        value=peak,
        unit="MiB",
        size_mib=size_mib,
        floor_mib=round(floor, 1),
        target_mib=RSS_TARGET_MIB,
    )
