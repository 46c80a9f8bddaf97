"""The production topology on this machine: PostgreSQL, moto's S3 and KMS, two key service
instances sharing the database, bucket and root key, and nginx terminating TLS in front.

    python -m deploy.topology up        # start everything; prints the URL and the CA to trust
    python -m deploy.topology status    # each process, and whether it answers
    python -m deploy.topology down      # stop everything and remove its files

Everything listens on 127.0.0.1 on free ports and lives in one temporary directory.
PostgreSQL and nginx come from the distro packages (``make postgres``, ``make nginx``);
PostgreSQL runs as an unprivileged account when we are root, as it refuses root. nginx runs
in the foreground of its own process with its own configuration (never the system service):
the upstreams and TLS here, the proxy policy from ``deploy/nginx/proxy.conf``, which the
Docker host's ``deploy/nginx/nginx.conf`` includes too. The instances' shared settings are
``deploy/keyservice.env``, the compose file's ``env_file``. TLS uses a throwaway CA made
here (``ca.pem``); clients trust it through ``SSL_CERT_FILE``, which httpx, and so the SDK,
honours (decision 0020).

``up`` writes a state file (``$CAREVAULT_TOPOLOGY_STATE``, by default
``/tmp/carevault-topology.json``) naming ports, process ids, the CA and the instances'
environment; ``down`` and ``status`` read it, and so can tests. Tests call :func:`start`,
whose processes die with the test process.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

LOOPBACK = "127.0.0.1"
DEPLOY_DIR = Path(__file__).resolve().parent
SHARED_ENV_FILE = DEPLOY_DIR / "keyservice.env"
PROXY_CONF = DEPLOY_DIR / "nginx" / "proxy.conf"
DEFAULT_STATE = Path(tempfile.gettempdir()) / "carevault-topology.json"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POSTGRES_SUPERUSER = "carevault"
POSTGRES_OS_USERS = ("postgres", "nobody")
NGINX_BINARIES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
# moto accepts any credentials; these are not secrets.
S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"  # noqa: S105 (moto ignores it)
INSTANCES = ("a", "b")
# Built as a command group, as tests/servers.py does: `carevault-keyservice serve` for this
# interpreter, whether or not the console script is on PATH.
_KEYSERVICE_CLI = (
    "import typer.main; from keyservice.cli import app; "
    "typer.main.get_group(app)(prog_name='carevault-keyservice')"
)


class TopologyError(RuntimeError):
    """Something in the topology did not start or is not installed; the message says what."""


@dataclass(frozen=True)
class Proc:
    """One started process: its name, pid (= its process group) and log file."""

    name: str
    pid: int
    log: str


@dataclass
class Topology:
    """What ``up`` started and where; saved as JSON in the state file."""

    base_dir: str
    url: str
    ca_file: str
    instance_urls: dict[str, str]
    env: dict[str, str]
    postgres_url: str
    s3_endpoint: str
    bucket: str
    procs: list[Proc] = field(default_factory=list)

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def instance_env(self, name: str) -> dict[str, str]:
        """The settings instance ``name`` runs with (its host commands need them too)."""
        return {**self.env, "CAREVAULT_DATA_DIR": str(Path(self.base_dir) / f"keyservice-{name}")}

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts this topology's CA (and nothing else)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> Topology:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise TopologyError(f"no topology state at {path}: run `up` first") from None
        raw["procs"] = [Proc(**p) for p in raw["procs"]]
        return cls(**raw)


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state != "Z"


def _as_user(user: str | None) -> dict[str, Any]:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class _Starter:
    """Starts processes in sessions of their own, logging to the base directory."""

    def __init__(self, base: Path, *, die_with_parent: bool) -> None:
        self.base = base
        self.die_with_parent = die_with_parent
        self.started: list[tuple[Proc, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        run_as: str | None = None,
        cwd: Path | None = None,
    ) -> tuple[Proc, subprocess.Popen[bytes]]:
        log_path = self.base / f"{name}.log"
        preexec: Callable[[], None] | None = None
        if self.die_with_parent:
            from clients.localservice import die_with_parent

            preexec = die_with_parent(signal.SIGKILL)
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec,
                **_as_user(run_as),
            )
        proc = Proc(name, popen.pid, str(log_path))
        self.started.append((proc, popen))
        return proc, popen

    def wait_ready(
        self, proc: Proc, popen: subprocess.Popen[bytes], probe: Callable[[], bool]
    ) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise TopologyError(f"{proc.name} exited during start-up:\n{_tail(proc.log)}")
            if probe():
                return
            time.sleep(0.05)
        raise TopologyError(
            f"{proc.name} was not ready in {STARTUP_TIMEOUT_S} s:\n{_tail(proc.log)}"
        )


def _tail(path: str, limit: int = 3000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-limit:] or "(empty log)"
    except FileNotFoundError:
        return "(no log)"


_STOP_SIGNALS = {"postgres": signal.SIGINT}  # PostgreSQL's "fast" shutdown


def stop_proc(proc: Proc) -> None:
    """Signal the process group, wait for it to go, and kill whatever is left."""
    sig = _STOP_SIGNALS.get(proc.name, signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and alive(proc.pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(proc.pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(proc.pid, 0)


def _http_ok(url: str, *, verify: ssl.SSLContext | bool = True) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0, verify=verify).status_code == 200
        except httpx.TransportError:
            return False

    return probe


# --- the throwaway CA -----------------------------------------------------------------------


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA root and a server certificate for 127.0.0.1 and localhost signed by it, valid
    for a week; (ca.pem, server.pem, server.key). The CA's private key is never written."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"carevault topology CA {secrets.token_hex(4)}")]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(
        server_cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


# --- the parts ------------------------------------------------------------------------------


def shared_env() -> dict[str, str]:
    """``deploy/keyservice.env``: KEY=VALUE lines, # comments."""
    settings: dict[str, str] = {}
    for line in SHARED_ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def _base_env() -> dict[str, str]:
    """This process's environment without settings meant for some other service."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAREVAULT_", "AWS_", "SOFTHSM2_", "SSL_CERT_"))
    }


def postgres_bin_dir() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise TopologyError("PostgreSQL is not installed: run `make postgres`")


def postgres_os_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in POSTGRES_OS_USERS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise TopologyError(f"none of the users {POSTGRES_OS_USERS} exists to run PostgreSQL")


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), *NGINX_BINARIES):
        if candidate and Path(candidate).is_file():
            return candidate
    raise TopologyError("nginx is not installed: run `make nginx`")


def _start_postgres(starter: _Starter) -> str:
    bindir = postgres_bin_dir()
    run_as = postgres_os_user()
    pg_dir = starter.base / "postgres"
    pg_dir.mkdir()
    socket_dir = pg_dir / "socket"
    socket_dir.mkdir()
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (pg_dir, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    initdb = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(pg_dir / "data"),
            "-U",
            POSTGRES_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
            "--no-instructions",
        ],
        env=env,
        capture_output=True,
        check=False,
        **_as_user(run_as),
    )
    if initdb.returncode != 0:
        raise TopologyError(f"initdb failed:\n{initdb.stdout!r}\n{initdb.stderr!r}")
    port = free_port()
    proc, popen = starter.start(
        "postgres",
        [
            str(bindir / "postgres"),
            "-D",
            str(pg_dir / "data"),
            "-p",
            str(port),
            "-k",
            str(socket_dir),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "max_connections=200",
        ],
        env=env,
        run_as=run_as,
    )
    conninfo = f"host={LOOPBACK} port={port} user={POSTGRES_SUPERUSER} dbname=postgres"

    def probe() -> bool:
        import psycopg

        try:
            with psycopg.connect(conninfo, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    starter.wait_ready(proc, popen, probe)
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE DATABASE carevault")
    return f"postgresql+psycopg://{POSTGRES_SUPERUSER}@{LOOPBACK}:{port}/carevault"


def _start_moto(starter: _Starter, bucket: str, region: str) -> tuple[str, str]:
    """moto's server (S3 and KMS on one endpoint), the bucket, and a KMS key; (url, key id)."""
    port = free_port()
    proc, popen = starter.start(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        env=_base_env(),
    )
    endpoint = f"http://{LOOPBACK}:{port}"
    starter.wait_ready(proc, popen, _http_ok(f"{endpoint}/moto-api/"))
    import boto3

    session = boto3.Session(
        aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY, region_name=region
    )
    session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    kms = session.client("kms", endpoint_url=endpoint)
    key = kms.create_key(Description="carevault topology root")
    return endpoint, str(key["KeyMetadata"]["KeyId"])


def _nginx_conf(base: Path, *, port: int, upstreams: list[int], cert: Path, key: Path) -> Path:
    servers = "\n".join(
        f"    server {LOOPBACK}:{p} max_fails=1 fail_timeout=5s;" for p in upstreams
    )
    temp = "\n".join(
        f"  {kind}_temp_path {base / 'nginx' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = base / "nginx" / "nginx.conf"
    conf.write_text(
        f"""# Written by deploy/topology.py; the proxy policy is deploy/nginx/proxy.conf.
daemon off;
worker_processes 1;
pid {base / "nginx" / "nginx.pid"};
error_log {base / "nginx" / "error.log"} warn;
events {{ worker_connections 512; }}
http {{
  # Which instance served each request (tests read it: see served()).
  log_format carevault '$request_method $uri $status $upstream_addr';
  access_log {base / "nginx" / "access.log"} carevault;
{temp}
  upstream keyservice {{
{servers}
  }}
  server {{
    listen {LOOPBACK}:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    include {PROXY_CONF};
  }}
}}
"""
    )
    return conf


def start(base_dir: Path | None = None, *, die_with_parent: bool = True) -> Topology:
    """Start the whole topology; on failure, stop what had started and raise."""
    nginx = nginx_binary()
    postgres_bin_dir()
    base = base_dir or Path(tempfile.mkdtemp(prefix="carevault-topology-"))
    # Traversable (not listable) by the unprivileged accounts PostgreSQL and nginx's
    # workers run as; what is secret inside is 0600 or in 0700 directories.
    base.chmod(0o711)
    starter = _Starter(base, die_with_parent=die_with_parent)
    try:
        return _start_all(starter, nginx)
    except BaseException:
        for proc, _ in reversed(starter.started):
            stop_proc(proc)
        if base_dir is None:
            shutil.rmtree(base, ignore_errors=True)
        raise


def _start_all(starter: _Starter, nginx: str) -> Topology:
    base = starter.base
    shared = shared_env()
    bucket = shared["CAREVAULT_BLOB_STORE"].removeprefix("s3://")
    region = shared.get("AWS_DEFAULT_REGION", "us-east-1")
    database_url = _start_postgres(starter)
    s3, kms_key = _start_moto(starter, bucket, region)
    ca_file, cert_file, key_file = make_ca(base)
    lb_port = free_port()
    url = f"https://{LOOPBACK}:{lb_port}"
    keys = base / "keys"
    keys.mkdir(mode=0o700)
    env = {
        **shared,
        "CAREVAULT_DATABASE_URL": database_url,
        "CAREVAULT_S3_ENDPOINT_URL": s3,
        "CAREVAULT_ROOT_KEY": f"kms:{kms_key}",
        "CAREVAULT_KMS_ENDPOINT_URL": s3,
        "CAREVAULT_PUBLIC_URL": url,
        # Every instance signs and MACs one audit chain and one kind of blob token.
        "CAREVAULT_AUDIT_KEY_FILE": str(keys / "audit-signing.key"),
        "CAREVAULT_AUDIT_MAC_KEY_FILE": str(keys / "audit-mac.key"),
        "CAREVAULT_TOKEN_KEY_FILE": str(keys / "blob-token.key"),
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
    }
    topology = Topology(
        base_dir=str(base),
        url=url,
        ca_file=str(ca_file),
        instance_urls={},
        env=env,
        postgres_url=database_url,
        s3_endpoint=s3,
        bucket=bucket,
        procs=[proc for proc, _ in starter.started],
    )
    # One after the other: the first migrates the database and writes the shared key files.
    ports: list[int] = []
    for name in INSTANCES:
        port = free_port()
        data_dir = Path(topology.instance_env(name)["CAREVAULT_DATA_DIR"])
        data_dir.mkdir(mode=0o700)
        proc, popen = starter.start(
            f"keyservice-{name}",
            [
                sys.executable,
                "-c",
                _KEYSERVICE_CLI,
                "serve",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
            ],
            env={**_base_env(), **topology.instance_env(name)},
            cwd=data_dir,
        )
        instance_url = f"http://{LOOPBACK}:{port}"
        starter.wait_ready(proc, popen, _http_ok(f"{instance_url}/healthz"))
        topology.instance_urls[name] = instance_url
        topology.procs.append(proc)
        ports.append(port)
    (base / "nginx").mkdir()
    conf = _nginx_conf(base, port=lb_port, upstreams=ports, cert=cert_file, key=key_file)
    proc, popen = starter.start(
        "nginx", [nginx, "-p", str(base / "nginx"), "-c", str(conf)], env=_base_env()
    )
    starter.wait_ready(proc, popen, _http_ok(f"{url}/healthz", verify=topology.ssl_context()))
    topology.procs.append(proc)
    return topology


@dataclass(frozen=True)
class Served:
    """One request the balancer answered, from its access log: the instances it tried (more
    than one after a connection error), in order."""

    method: str
    path: str
    status: int
    instances: tuple[str, ...]


def served(topology: Topology) -> list[Served]:
    """Every request in the balancer's access log so far, oldest first (blob URLs are not
    logged: their paths are bearer tokens)."""
    names = {url.removeprefix("http://"): name for name, url in topology.instance_urls.items()}
    log = Path(topology.base_dir) / "nginx" / "access.log"
    found = []
    for line in log.read_text().splitlines():
        method, path, status, upstreams = line.split(" ", 3)
        tried = [u.strip() for u in upstreams.split(",")]
        found.append(
            Served(method, path, int(status), tuple(names.get(u, u) for u in tried if u != "-"))
        )
    return found


def kill_instance(topology: Topology, name: str) -> None:
    """SIGKILL key service instance ``name`` (no graceful shutdown: a crash, or the OOM
    killer) and return once its port refuses connections."""
    proc = topology.proc(f"keyservice-{name}")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    address = httpx.URL(topology.instance_urls[name])
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(proc.pid, os.WNOHANG)
        if not alive(proc.pid):
            try:
                socket.create_connection((address.host, address.port or 80), timeout=1).close()
            except OSError:
                return
        time.sleep(0.02)
    raise TopologyError(f"instance {name} (pid {proc.pid}) still answers after SIGKILL")


def stop(topology: Topology, *, remove: bool = True) -> None:
    """Stop every process of the topology (the balancer first) and remove its directory."""
    for proc in reversed(topology.procs):
        stop_proc(proc)
    if remove:
        shutil.rmtree(topology.base_dir, ignore_errors=True)


def status(topology: Topology) -> list[tuple[str, int, bool, str]]:
    """(name, pid, running, what it answers) for each process."""
    rows = []
    for proc in topology.procs:
        running = alive(proc.pid)
        answer = ""
        if proc.name.startswith("keyservice-"):
            answer = _answer(
                f"{topology.instance_urls[proc.name.removeprefix('keyservice-')]}/healthz", True
            )
        elif proc.name == "nginx":
            answer = _answer(f"{topology.url}/healthz", topology.ssl_context())
        rows.append((proc.name, proc.pid, running, answer))
    return rows


def _answer(url: str, verify: ssl.SSLContext | bool) -> str:
    try:
        return f"{url} -> {httpx.get(url, timeout=2.0, verify=verify).status_code}"
    except httpx.HTTPError as exc:
        return f"{url} -> {type(exc).__name__}"


# --- the command ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.topology", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state",
        type=Path,
        default=Path(os.environ.get("CAREVAULT_TOPOLOGY_STATE", DEFAULT_STATE)),
        help="the state file (default: $CAREVAULT_TOPOLOGY_STATE or %(default)s)",
    )
    args = parser.parse_args(argv)
    state: Path = args.state
    try:
        if args.command == "up":
            if state.exists():
                raise TopologyError(f"a topology is recorded in {state}: run `down` first")
            topology = start(die_with_parent=False)
            topology.save(state)
            print(f"carevault topology up at {topology.url}")
            for name, url in topology.instance_urls.items():
                print(f"  instance {name}: {url}")
            print(f"  trust its CA: export SSL_CERT_FILE={topology.ca_file}")
            print(f'  host commands: the environment in {state} ("env")')
            print("  stop it: python -m deploy.topology down")
        elif args.command == "status":
            topology = Topology.load(state)
            print(f"{topology.url} (state {state}, files {topology.base_dir})")
            rows = status(topology)
            for name, pid, running, answer in rows:
                print(
                    f"  {name:<13} pid {pid:<8} {'running' if running else 'STOPPED':<8} {answer}"
                )
            return 0 if all(row[2] for row in rows) else 1
        else:
            topology = Topology.load(state)
            stop(topology)
            state.unlink()
            print("carevault topology stopped")
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
