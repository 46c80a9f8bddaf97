"""Run a key service process on this machine for the demo and the benchmarks.

It is started in its own process group on a free loopback port and always stopped (the whole
group) when the ``with`` block ends, also on error or Ctrl-C. ``LocalService.host`` runs the
host's own commands (``carevault-keyservice …``) against it, as its operator would.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
HOST_COMMAND_TIMEOUT_S = 120
_CODE_LINE = re.compile(r"enrolment code .*: (\S+)\s*$", re.MULTILINE)


class LocalServiceError(RuntimeError):
    """The key service did not start, or a host command failed; the message has its output."""


@dataclass(frozen=True)
class LocalService:
    base_url: str
    data_dir: Path
    admin_code: str
    log_path: Path
    pid: int
    env: Mapping[str, str]

    def host(self, *args: str) -> str:
        """Run ``carevault-keyservice ARGS`` on this service's host; its standard output."""
        done = subprocess.run(
            _argv(*args),
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=HOST_COMMAND_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise LocalServiceError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def code_at_host(self, principal_id: str) -> str:
        """An enrolment code issued at the host (``enrolment-code``): no admin sees it."""
        return _code(self.host("enrolment-code", principal_id))

    def approve_at_host(self, proposal_id: str, *, force: bool = False) -> str | None:
        """Approve a proposal at the host (``proposals approve``); the enrolment code it made,
        if it made one. ``force``: although its proposer saw the beneficiary's codes (a
        bench's own setup, where one operator plays every part)."""
        args = ("proposals", "approve", proposal_id, *(("--force",) if force else ()))
        found = _CODE_LINE.search(self.host(*args))
        return found.group(1) if found else None


def _code(output: str) -> str:
    found = _CODE_LINE.search(output)
    if found is None:
        raise LocalServiceError(f"no enrolment code in:\n{output}")
    return found.group(1)


_libc: Any = None
if sys.platform.startswith("linux"):
    _libc_name = ctypes.util.find_library("c")
    _libc = ctypes.CDLL(_libc_name, use_errno=True) if _libc_name else None
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when its parent dies,
    so a server started in a session of its own is not left running by a killed caller.

    Linux only (None elsewhere). Call Popen from the main thread: the kernel signals when the
    *thread* that forked exits. It runs after Popen has changed the child's user, which would
    otherwise clear the setting; a parent that died before it ran makes the child exit.
    """
    if _libc is None:
        return None
    libc = _libc
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "from keyservice.cli import main; main()", *args]


def _environment(data_dir: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAREVAULT_")}
    return {
        **base,
        "CAREVAULT_DATA_DIR": str(data_dir),
        "CAREVAULT_PUBLIC_URL": f"http://{LOOPBACK}:{port}",
        "CAREVAULT_AUDIENCE": "carevault-local",
        **extra,
    }


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except FileNotFoundError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)
    # Anything the server spawned shares its group; make sure none of it outlives us.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def local_keyservice(
    data_dir: Path, *, extra_env: Mapping[str, str] | None = None
) -> Iterator[LocalService]:
    """Bootstrap and serve a key service whose state lives in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = _environment(data_dir, port, extra_env or {})
    boot = subprocess.run(
        _argv("bootstrap"), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    found = _CODE_LINE.search(boot.stdout)
    if boot.returncode != 0 or not found:
        raise LocalServiceError(f"bootstrap failed:\n{boot.stdout}\n{boot.stderr}")
    log_path = data_dir / "keyservice.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            _argv("serve", "--host", LOOPBACK, "--port", str(port)),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    try:
        base_url = f"http://{LOOPBACK}:{port}"
        _wait_ready(process, base_url, log_path)
        yield LocalService(base_url, data_dir, found.group(1), log_path, process.pid, env)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServiceError(f"the key service exited at start:\n{_tail(log_path)}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise LocalServiceError(f"the key service did not answer in time:\n{_tail(log_path)}")
