"""Real servers for the test session: moto's S3 (and KMS) server, PostgreSQL, a SoftHSM2
token and the key service.

Each server is a separate process listening on 127.0.0.1 on a free port, started in its own
process group so that stopping it also stops anything it spawned. Every process started here
is registered; the fixtures stop them when the session ends, an ``atexit`` hook stops any
that are left (an interrupted session), SIGTERM is turned into an interrupt so that the
hooks run, and on Linux each child is asked to die with the test process even if that is
killed outright.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import httpx

from clients.localservice import die_with_parent

# One copy of these, shared with the production topology that the topology tests start.
from deploy.topology import free_port, postgres_bin_dir, postgres_os_user

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOOPBACK = "127.0.0.1"

S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"
S3_REGION = "us-east-1"

POSTGRES_SUPERUSER = "carevault"


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries the tail of its log."""


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return text[-limit:] or "(empty log)"


# --- process management ---------------------------------------------------------------------


class Process(Protocol):
    """What is needed of a started process: ``subprocess.Popen`` or a ``LaunchedProcess``."""

    @property
    def pid(self) -> int: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class ManagedProcess:
    """A server process in its own process group, with its output captured to a log file."""

    name: str
    popen: Process
    log_path: Path
    stop_signal: int
    _log: IO[bytes] | None = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def stop(self) -> None:
        """Signal the whole process group, wait for it, and kill what does not exit in time."""
        pgid = self.popen.pid  # start_new_session makes the leader's pid the group id
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, self.stop_signal)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT_S)
        # Children that outlived their leader still carry its group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
        _registry.discard(self)

    def __hash__(self) -> int:
        return id(self)


class _Registry:
    """Every process started here, so that none outlives the test session."""

    def __init__(self) -> None:
        self._procs: list[ManagedProcess] = []
        self._lock = threading.Lock()
        self._hooked = False

    def add(self, proc: ManagedProcess) -> None:
        self.hook()
        with self._lock:
            self._procs.append(proc)

    def hook(self) -> None:
        """Stop every registered process at exit (before what was hooked earlier), and turn
        SIGTERM into an interrupt so that the hooks run."""
        with self._lock:
            if not self._hooked:
                atexit.register(self.stop_all)
                _interrupt_on_sigterm()
                self._hooked = True

    def discard(self, proc: ManagedProcess) -> None:
        with self._lock:
            self._procs = [p for p in self._procs if p is not proc]

    def stop_all(self) -> None:
        with self._lock:
            procs = list(reversed(self._procs))
        for proc in procs:
            proc.stop()


_registry = _Registry()


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM interrupt the session like Ctrl-C, so fixture teardown and atexit run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def _as_user(user: str | None) -> dict[str, Any]:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_process(
    name: str,
    argv: list[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    run_as: str | None = None,
    stop_signal: int = signal.SIGTERM,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session, output to ``log_dir/<name>.log``, and register it."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ if env is None else env),
        cwd=cwd,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGKILL),
        **_as_user(run_as),
    )
    proc = ManagedProcess(name, popen, log_path, stop_signal, log)
    _registry.add(proc)
    return proc


def wait_until_ready(proc: ManagedProcess, probe: Callable[[], bool]) -> None:
    """Poll ``probe`` until it holds; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not proc.running():
            log = proc.log_tail()
            proc.stop()
            raise ServerStartError(f"{proc.name} exited during start-up:\n{log}")
        if probe():
            return
        time.sleep(0.05)
    log = proc.log_tail()
    proc.stop()
    raise ServerStartError(f"{proc.name} was not ready after {STARTUP_TIMEOUT_S} s:\n{log}")


def _http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.TransportError:
            return False

    return probe


# --- S3 (moto's standalone server) ----------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """An S3-compatible endpoint with one bucket, reached with SigV4-signed requests."""

    endpoint_url: str
    bucket: str
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY
    region: str = S3_REGION

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint (SigV4, path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def session(self) -> Any:
        """A boto3 session holding this endpoint's credentials and region."""
        import boto3

        return boto3.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def store(self) -> Any:
        """Carevault's S3 blob store on this endpoint's bucket."""
        from vault.storage.s3 import S3Store

        return S3Store.connect(self.bucket, endpoint_url=self.endpoint_url, session=self.session())

    def env(self) -> dict[str, str]:
        """The AWS_* variables a child process needs to reach this endpoint."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def kms_client(self) -> Any:
        """A boto3 KMS client for the same endpoint (moto serves every service on it)."""
        import boto3

        return boto3.client(
            "kms",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def new_kms_key(self) -> str:
        """A new symmetric encryption key in moto's KMS; its id."""
        metadata = self.kms_client().create_key(Description="carevault test root key")
        key_id: str = metadata["KeyMetadata"]["KeyId"]
        return key_id

    def kms_env(self, key_id: str) -> dict[str, str]:
        """Settings for a key service whose root key is ``key_id`` in this endpoint's KMS."""
        return {
            "CAREVAULT_ROOT_KEY": f"kms:{key_id}",
            "CAREVAULT_KMS_ENDPOINT_URL": self.endpoint_url,
            "CAREVAULT_KMS_REGION": self.region,
            **self.env(),
        }

    def with_new_bucket(self) -> S3Server:
        """The same endpoint with a fresh, empty bucket."""
        server = S3Server(
            self.endpoint_url,
            f"carevault-test-{secrets.token_hex(6)}",
            self.access_key,
            self.secret_key,
            self.region,
        )
        server.client().create_bucket(Bucket=server.bucket)
        return server


def start_s3_server(log_dir: Path) -> tuple[ManagedProcess, S3Server]:
    """Start moto's S3 server (all of moto's services, KMS included) and create a bucket."""
    port = free_port()
    proc = start_process(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        log_dir=log_dir,
    )
    endpoint = f"http://{LOOPBACK}:{port}"
    wait_until_ready(proc, _http_ok(f"{endpoint}/moto-api/"))
    return proc, S3Server(endpoint, "unused").with_new_bucket()


# --- SoftHSM2 (a PKCS#11 token) -------------------------------------------------------------

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class SoftHsm:
    """One initialised token in a private SoftHSM2 store, holding the root key's version 1."""

    conf: Path
    module: Path
    token: str
    key_label: str
    pin_file: Path

    def env(self) -> dict[str, str]:
        """Settings for a key service whose root key is this token's key."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "CAREVAULT_ROOT_KEY": f"pkcs11:token={self.token};object={self.key_label}",
            "CAREVAULT_PKCS11_MODULE": str(self.module),
            "CAREVAULT_PKCS11_PIN_FILE": str(self.pin_file),
        }

    def session(self) -> Any:
        """A read-write PKCS#11 session on the token, logged in (SOFTHSM2_CONF is set)."""
        import pkcs11
        from pkcs11.exceptions import UserAlreadyLoggedIn

        token = pkcs11.lib(str(self.module)).get_token(token_label=self.token)
        try:
            return token.open(user_pin=self.pin_file.read_text().strip(), rw=True)
        except UserAlreadyLoggedIn:
            # Logins are per process: a provider in this process is logged in already.
            return token.open(rw=True)

    def add_key(self, label: str) -> None:
        """Generate version 1 of a root key labelled ``label`` inside the token."""
        import pkcs11

        with self.session() as session:
            session.generate_key(
                pkcs11.KeyType.AES,
                256,
                label=label,
                id=(1).to_bytes(4, "big"),
                store=True,
                template={pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: False},
            )


def softhsm_module() -> Path:
    """SoftHSM2's PKCS#11 module from the distro packages."""
    for candidate in SOFTHSM_MODULES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise ServerStartError("SoftHSM2 is not installed: run `make softhsm`")


def start_softhsm(base_dir: Path, *, key_label: str = "carevault-root") -> SoftHsm:
    """A SoftHSM2 store in ``base_dir`` (SOFTHSM2_CONF points at its config), one token
    initialised with softhsm2-util, and an AES-256 key generated inside it (id 1).

    This process's environment gets SOFTHSM2_CONF too: SoftHSM reads it once, when the
    first PKCS#11 session of the process opens the module.
    """
    module = softhsm_module()
    tokens = base_dir / "tokens"
    tokens.mkdir(mode=0o700)
    conf = base_dir / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    pin = secrets.token_hex(8)
    pin_file = base_dir / "user.pin"
    pin_file.touch(mode=0o600)
    pin_file.write_text(pin + "\n")
    token = f"carevault-{secrets.token_hex(4)}"
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    so_pin = secrets.token_hex(8)
    init = subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            token,
            "--pin",
            pin,
            "--so-pin",
            so_pin,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        raise ServerStartError(f"softhsm2-util failed:\n{init.stdout}{init.stderr}")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    hsm = SoftHsm(conf, module, token, key_label, pin_file)
    hsm.add_key(key_label)
    return hsm


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """One database on a running PostgreSQL server (trust authentication on loopback)."""

    host: str
    port: int
    user: str
    dbname: str

    @property
    def url(self) -> str:
        """A SQLAlchemy URL using the psycopg 3 driver."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def conninfo(self) -> str:
        """A libpq connection string, for psycopg.connect()."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    def create_database(self, dbname: str | None = None) -> PostgresServer:
        """A fresh, empty database on the same server."""
        import psycopg
        from psycopg import sql

        name = dbname or f"carevault_{secrets.token_hex(6)}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return PostgresServer(self.host, self.port, self.user, name)


def start_postgres(base_dir: Path) -> tuple[ManagedProcess, PostgresServer]:
    """initdb a cluster in ``base_dir``, start it on a free port, and create a database."""
    bindir = postgres_bin_dir()
    run_as = postgres_os_user()
    data_dir = base_dir / "data"
    socket_dir = base_dir / "socket"
    socket_dir.mkdir()
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (base_dir, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    initdb = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
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
        raise ServerStartError(f"initdb failed:\n{initdb.stdout!r}\n{initdb.stderr!r}")
    port = free_port()
    proc = start_process(
        "postgres",
        [
            str(bindir / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-k",
            str(socket_dir),
            "-c",
            f"listen_addresses={LOOPBACK}",
            # Durability is not under test here; these make the server start and run faster.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        log_dir=base_dir,
        env=env,
        run_as=run_as,
        stop_signal=signal.SIGINT,  # "fast" shutdown: end sessions, then exit
    )
    admin = PostgresServer(LOOPBACK, port, POSTGRES_SUPERUSER, "postgres")

    def probe() -> bool:
        import psycopg

        try:
            with psycopg.connect(admin.conninfo, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    wait_until_ready(proc, probe)
    return proc, admin.create_database("carevault_test")


# --- the key service ------------------------------------------------------------------------


@dataclass
class KeyService:
    """A running key service process."""

    base_url: str
    data_dir: Path
    env: dict[str, str]
    port: int
    process: ManagedProcess = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()

    def log_tail(self) -> str:
        return self.process.log_tail()

    def s3_bucket(self) -> S3Server:
        """The S3 endpoint and bucket the service stores blobs in (the production flavour)."""
        location = self.env["CAREVAULT_BLOB_STORE"]
        assert location.startswith("s3://"), location
        return S3Server(
            endpoint_url=self.env["CAREVAULT_S3_ENDPOINT_URL"],
            bucket=location.removeprefix("s3://"),
            access_key=self.env["AWS_ACCESS_KEY_ID"],
            secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region=self.env["AWS_DEFAULT_REGION"],
        )


# Built as a command group even while the CLI has a single command: Typer would otherwise
# make that command the whole program and reject its name as an extra argument.
_KEYSERVICE_CLI = (
    "import typer.main; from keyservice.cli import app; "
    "typer.main.get_group(app)(prog_name='carevault-keyservice')"
)


def keyservice_argv(*args: str) -> list[str]:
    """The command line of ``carevault-keyservice <args>`` for this interpreter."""
    return [sys.executable, "-c", _KEYSERVICE_CLI, *args]


class LaunchedProcess:
    """A process the launcher forked (tests/launcher.py): not this process's child, so its
    exit status arrives from the launcher; otherwise used like ``subprocess.Popen``."""

    def __init__(self, launcher: Launcher, pid: int, args: list[str]) -> None:
        self._launcher = launcher
        self.pid = pid
        self.args = args

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        return self._launcher.returncode(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        code = self._launcher.wait(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code


class Launcher:
    """The session's ``python -m tests.launcher``: forks ``carevault-keyservice`` processes
    from an interpreter that imported the service once, instead of importing it in each."""

    def __init__(self, log_dir: Path) -> None:
        self._log = (log_dir / "launcher.log").open("ab")
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "tests.launcher"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=Path(__file__).resolve().parents[1],
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._exited: dict[int, int] = {}
        self._gone = False
        threading.Thread(target=self._read, name="launcher-reader", daemon=True).start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            message = json.loads(line)
            with self._changed:
                if "exited" in message:
                    self._exited[message["exited"]] = message["returncode"]
                else:
                    self._answers[message["id"]] = message
                self._changed.notify_all()
        with self._changed:
            self._gone = True
            self._changed.notify_all()

    def alive(self) -> bool:
        return self._popen.poll() is None and not self._gone

    def spawn(
        self,
        args: list[str],
        *,
        env: Mapping[str, str],
        stdout: Path,
        stderr: Path,
        cwd: Path | None = None,
    ) -> LaunchedProcess:
        """Fork ``carevault-keyservice <args>`` in a session of its own."""
        request = {
            "args": list(args),
            "env": dict(env),
            "cwd": None if cwd is None else str(cwd),
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            assert self._popen.stdin is not None
            self._popen.stdin.write(json.dumps({"id": request_id, **request}).encode() + b"\n")
            self._popen.stdin.flush()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with self._changed:
            while request_id not in self._answers:
                left = deadline - time.monotonic()
                if self._gone or left <= 0:
                    raise ServerStartError(f"the launcher did not fork:\n{_tail(self.log_path)}")
                self._changed.wait(left)
            answer = self._answers.pop(request_id)
        if "error" in answer:
            raise ServerStartError(f"the launcher could not fork: {answer['error']}")
        return LaunchedProcess(self, int(answer["pid"]), keyservice_argv(*args))

    @property
    def log_path(self) -> Path:
        return Path(self._log.name)

    def returncode(self, pid: int) -> int | None:
        with self._changed:
            if pid in self._exited:
                return self._exited[pid]
            # A child of a launcher that is gone was killed with it (PR_SET_PDEATHSIG).
            return -signal.SIGKILL if self._gone else None

    def wait(self, pid: int, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                code = self.returncode(pid)
                if code is not None:
                    return code
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._changed.wait(left)

    def stop(self) -> None:
        """Close its input (it exits) and wait; anything it forked dies with it."""
        if self._popen.stdin is not None:
            with contextlib.suppress(OSError):
                self._popen.stdin.close()
        try:
            self._popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()


_launcher: Launcher | None = None
_launcher_lock = threading.Lock()


def launcher(log_dir: Path) -> Launcher:
    """This process's launcher, started on first use (logging to ``log_dir``) and stopped at
    exit after the processes it forked."""
    global _launcher
    with _launcher_lock:
        if _launcher is None or not _launcher.alive():
            _launcher = Launcher(log_dir)
            atexit.register(_launcher.stop)
            _registry.hook()
        return _launcher


def start_keyservice_process(
    name: str, args: list[str], *, log_dir: Path, env: Mapping[str, str], cwd: Path
) -> ManagedProcess:
    """``carevault-keyservice <args>`` in a session of its own, output to
    ``log_dir/<name>.log``, forked by the launcher, and registered."""
    log_path = log_dir / f"{name}.log"
    popen = launcher(log_dir).spawn(args, env=env, stdout=log_path, stderr=log_path, cwd=cwd)
    proc = ManagedProcess(name, popen, log_path, signal.SIGTERM, None)
    _registry.add(proc)
    return proc


def embedded_env(data_dir: Path, *, port: int) -> dict[str, str]:
    """Settings for the embedded default: SQLite, local blobs and a local root key file."""
    return {
        "CAREVAULT_DATA_DIR": str(data_dir),
        "CAREVAULT_DATABASE_URL": f"sqlite:///{data_dir / 'carevault.db'}",
        "CAREVAULT_ROOT_KEY": f"file:{data_dir / 'root.key'}",
        "CAREVAULT_BLOB_STORE": f"local:{data_dir / 'blobs'}",
        "CAREVAULT_PUBLIC_URL": f"http://{LOOPBACK}:{port}",
        "CAREVAULT_AUDIENCE": "carevault-test",
        # Timed audit checkpoints add objects to the blob store; the shared services keep them
        # out of tests that compare the store before and after (tests of checkpoints set their
        # own interval).
        "CAREVAULT_CHECKPOINT_SECONDS": "3600",
        # The suite sends its deliberate failures from 127.0.0.1 and reads their entries one by
        # one; the default (1 a window per reason, decision 0011) would coalesce them. Tests of
        # the default start a service without this line.
        "CAREVAULT_REJECT_AUDIT_EACH": "20",
    }


def production_env(
    data_dir: Path, *, port: int, postgres: PostgresServer, s3: S3Server
) -> dict[str, str]:
    """Settings for the production-like topology: PostgreSQL and an S3 bucket."""
    return {
        **embedded_env(data_dir, port=port),
        "CAREVAULT_DATABASE_URL": postgres.url,
        "CAREVAULT_BLOB_STORE": f"s3://{s3.bucket}",
        "CAREVAULT_S3_ENDPOINT_URL": s3.endpoint_url,
        **s3.env(),
    }


def _child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment minus CAREVAULT_*/AWS_*/SOFTHSM2_* leftovers, plus ``env``."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("CAREVAULT_", "AWS_", "SOFTHSM2_"))
    }
    return {**base, **env}


def start_keyservice(env: Mapping[str, str], *, port: int, log_dir: Path) -> KeyService:
    """Start ``carevault-keyservice serve`` on ``port`` and wait until /healthz answers."""
    data_dir = Path(env["CAREVAULT_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = start_keyservice_process(
        f"keyservice-{port}",
        ["serve", "--host", LOOPBACK, "--port", str(port)],
        log_dir=log_dir,
        env=_child_env(env),
        cwd=data_dir,
    )
    base_url = f"http://{LOOPBACK}:{port}"
    wait_until_ready(proc, _http_ok(f"{base_url}/healthz"))
    return KeyService(base_url, data_dir, dict(env), port, proc)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def run_keyservice_command(
    env: Mapping[str, str], *args: str, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``carevault-keyservice <args>`` with a key service's environment; output captured.

    With ``check`` a non-zero exit raises CalledProcessError whose message includes stderr.
    """
    argv = keyservice_argv(*args)
    with tempfile.TemporaryDirectory(prefix="keyservice-command-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        child = launcher(Path(scratch).parent).spawn(
            list(args), env=_child_env(env), stdout=out, stderr=err
        )
        try:
            returncode = child.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(STOP_TIMEOUT_S)
            raise subprocess.TimeoutExpired(
                argv, timeout, output=_read(out), stderr=_read(err)
            ) from None
        result = subprocess.CompletedProcess(argv, returncode, _read(out), _read(err))
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode,
            ["carevault-keyservice", *args],
            output=result.stdout,
            stderr=f"{result.stderr}\n(stdout: {result.stdout})",
        )
    return result


class KeyServiceFactory:
    """Starts key service instances for tests that need their own (to restart, to share a
    database between instances, to change a setting). All are stopped at session end."""

    def __init__(
        self,
        base_dir: Path,
        *,
        postgres: Callable[[], PostgresServer],
        s3: Callable[[], S3Server],
    ) -> None:
        self._base_dir = base_dir
        self._postgres = postgres
        self._s3 = s3
        self._started: list[KeyService] = []

    def __call__(
        self,
        *,
        flavour: str = "embedded",
        extra_env: Mapping[str, str] | None = None,
    ) -> KeyService:
        """Start a fresh instance: ``embedded`` (SQLite, local blobs) or ``production``
        (a new PostgreSQL database and a new S3 bucket). ``extra_env`` overrides settings."""
        port = free_port()
        data_dir = Path(tempfile.mkdtemp(prefix=f"keyservice-{flavour}-", dir=self._base_dir))
        if flavour == "embedded":
            env = embedded_env(data_dir, port=port)
        elif flavour == "production":
            env = production_env(
                data_dir,
                port=port,
                postgres=self._postgres().create_database(),
                s3=self._s3().with_new_bucket(),
            )
        else:
            raise ValueError(f"unknown key service flavour {flavour!r}")
        env.update(extra_env or {})
        return self.start(env, port=port)

    def start(self, env: Mapping[str, str], *, port: int | None = None) -> KeyService:
        """Start an instance with exactly this environment (e.g. a second instance on the
        same database, or a restart of a stopped one on its old port)."""
        chosen = port if port is not None else free_port()
        service = start_keyservice(env, port=chosen, log_dir=self._base_dir)
        self._started.append(service)
        return service

    def restart(self, service: KeyService) -> KeyService:
        """Stop ``service`` and start it again with the same environment and port."""
        service.stop()
        return self.start(service.env, port=service.port)

    def stop_all(self) -> None:
        for service in reversed(self._started):
            service.stop()
        self._started.clear()


def kill_at_first_line(
    argv: list[str], first_line: bytes, *, env: Mapping[str, str] | None = None
) -> int:
    """Run ``argv`` from the repository's root until it prints its first line, which must be
    ``first_line``, and kill it there (SIGKILL, as a crash would); its return code."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else dict(env),
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == first_line, proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


def make_temp_dir(prefix: str) -> Path:
    """A private temporary directory (0700) outside the repository."""
    return Path(tempfile.mkdtemp(prefix=prefix))
