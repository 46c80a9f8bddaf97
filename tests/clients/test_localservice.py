"""The embedded key service that the demo and benches start: it never outlives its caller."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"),
]

CALLER = """
import sys, time
from pathlib import Path
from clients.localservice import local_keyservice
with local_keyservice(Path(sys.argv[1])) as service:
    print(service.pid, service.base_url, flush=True)
    time.sleep(120)
"""


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_killed_caller_leaves_no_key_service_running(tmp_path: Path) -> None:
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, str(tmp_path / "service")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    pid = 0
    try:
        assert caller.stdout is not None
        pid_text, base_url = caller.stdout.readline().split()
        pid = int(pid_text)
        assert httpx.get(f"{base_url}/healthz", timeout=5.0).status_code == 200
        caller.kill()  # no cleanup runs in the caller: only the kernel can stop the service
        caller.wait(timeout=10)
        assert _gone(pid, within_s=15.0), "the key service outlived its killed caller"
    finally:
        caller.kill()
        caller.wait(timeout=10)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # a failed run leaves nothing behind
