"""Start ``carevault-keyservice`` processes from an interpreter that has imported it already.

Every key service the tests start, and every host command they run (``bootstrap``,
``proposals approve``, ``audit verify`` …), is a process of its own running the real CLI. Most
of such a process's start-up is importing the service (FastAPI, SQLAlchemy, Alembic, boto3,
cryptography): a second or more of CPU each time, hundreds of times a session. So the session
starts one launcher process, single-threaded, that imports those modules once and then forks
a child per command. The child is an ordinary process of its own (its own session and process
group, its own environment, working directory and output files) that runs the same CLI entry
point as ``python -c`` would, and ends through normal interpreter shutdown.

Nothing in the service is configured at import time (settings are read when a command runs,
the PKCS#11 module is loaded when a provider opens it), so a forked child sees exactly the
environment it was given.

Protocol, one JSON object a line: the test process writes ``{"id", "args", "env", "cwd",
"stdout", "stderr"}`` to the launcher's stdin; the launcher answers ``{"id", "pid"}`` (or
``{"id", "error"}``) and, whenever a child ends, ``{"exited": pid, "returncode": n}`` with
``n`` as subprocess reports it (negative: killed by that signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import selectors
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _preload() -> None:
    """Import what ``carevault-keyservice`` and the service under uvicorn import."""
    import typer.main  # noqa: F401
    import uvicorn
    import uvicorn.config
    import uvicorn.lifespan.on
    import uvicorn.loops.auto
    import uvicorn.protocols.http.auto
    import uvicorn.protocols.websockets.auto
    import uvicorn.server  # noqa: F401

    import keyservice.app
    import keyservice.cli  # noqa: F401


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _serve() -> dict[str, Any]:
    """Answer requests until stdin closes (then exit); returns only in a forked child, with
    the request that child is to run."""
    control_in = sys.stdin.buffer
    control_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(control_in.fileno(), selectors.EVENT_READ, "control")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    launcher = os.getpid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    buffered = b""
    while True:
        for key, _events in selector.select():
            if key.data == "wake":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    _send(control_out, {"exited": pid, "returncode": _returncode(status)})
                continue
            chunk = os.read(control_in.fileno(), 65536)
            if not chunk:
                os._exit(0)
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                request = json.loads(line)
                try:
                    pid = os.fork()
                except OSError as exc:
                    _send(control_out, {"id": request["id"], "error": str(exc)})
                    continue
                if pid == 0:
                    # The child: no trace of the launcher's control channel or signal set-up.
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    for fd in (wake_r, wake_w, control_in.fileno(), control_out.fileno()):
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                    if os.getppid() != launcher:
                        os._exit(1)
                    return dict(request)
                _send(control_out, {"id": request["id"], "pid": pid})


def _become(request: dict[str, Any]) -> None:
    """Turn this forked child into the process the request describes."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    err = (
        out
        if request["stderr"] == request["stdout"]
        else os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    )
    for source, target in ((devnull, 0), (out, 1), (err, 2)):
        os.dup2(source, target)
    for fd in {devnull, out, err} - {0, 1, 2}:
        os.close(fd)
    # The text streams were made for the launcher's descriptors; the same numbers now lead to
    # the child's files.
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False, errors="backslashreplace")  # noqa: SIM115
    if request.get("cwd"):
        os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["-c", *request["args"]]


def main() -> None:
    _preload()
    request = _serve()
    _become(request)
    # What ``carevault-keyservice <args>`` runs (tests/servers.py, _KEYSERVICE_CLI); it ends
    # the process through SystemExit and normal interpreter shutdown.
    import typer.main

    from keyservice.cli import app

    typer.main.get_group(app)(prog_name="carevault-keyservice")


if __name__ == "__main__":
    main()
