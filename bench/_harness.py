"""Shared helpers for benchmarks: interleaved rounds, medians, records, child peak RSS, and
the plain-S3 GET baseline.

A benchmark compares Carevault ("ours") with baselines by running every contender once per
round, in a rotating order, so that drift in the machine (frequency scaling, caches, other
load) falls on all of them alike; it reports medians over rounds.
"""

from __future__ import annotations

import os
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

Record = dict[str, object]

# ru_maxrss is in KiB on Linux and in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
_MIB = 1024 * 1024
_RESERVED = frozenset({"bench", "metric", "value", "unit", "baseline", "baseline_value", "ratio"})


def alternate(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each contender once per round, rotating who goes first; return each one's results.

    A contender returns one measurement (seconds, or a rate). Rotation keeps any one
    contender from always running right after another's warm-up or clean-up.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    names = list(contenders)
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(float(contenders[name]()))
    return results


def median(values: Iterable[float]) -> float:
    """The median; an empty series is an error, not zero."""
    series = list(values)
    if not series:
        raise ValueError("median of no values")
    return float(statistics.median(series))


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_seconds(fn: Callable[[], object]) -> float:
    """CPU seconds (user + system) of this process during one call of ``fn``."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def _record(
    *,
    bench: str,
    metric: str,
    value: float,
    unit: str,
    baseline: str | None,
    baseline_value: float | None,
    higher_is_better: bool,
    extra: dict[str, object],
) -> Record:
    record: Record = {"bench": bench, "metric": metric, "value": _round(value), "unit": unit}
    if baseline is not None:
        if baseline_value is None:
            raise ValueError("a baseline needs a baseline_value")
        numerator, denominator = (
            (value, baseline_value) if higher_is_better else (baseline_value, value)
        )
        if denominator <= 0:
            raise ValueError(f"{metric}: a ratio needs positive figures")
        ratio = numerator / denominator
        record.update(baseline=baseline, baseline_value=_round(baseline_value), ratio=_round(ratio))
    overlap = set(extra) & _RESERVED
    if overlap:
        raise ValueError(f"extra fields would overwrite {sorted(overlap)}")
    record.update(extra)
    return record


def rate_record(
    *,
    bench: str,
    metric: str,
    value: float,
    unit: str,
    baseline: str | None = None,
    baseline_value: float | None = None,
    **extra: object,
) -> Record:
    """A record for a rate (higher is better): ratio = ours / baseline."""
    return _record(
        bench=bench,
        metric=metric,
        value=value,
        unit=unit,
        baseline=baseline,
        baseline_value=baseline_value,
        higher_is_better=True,
        extra=extra,
    )


def time_record(
    *,
    bench: str,
    metric: str,
    value: float,
    unit: str,
    baseline: str | None = None,
    baseline_value: float | None = None,
    **extra: object,
) -> Record:
    """A record for a time, size or memory figure (lower is better): ratio = baseline / ours."""
    return _record(
        bench=bench,
        metric=metric,
        value=value,
        unit=unit,
        baseline=baseline,
        baseline_value=baseline_value,
        higher_is_better=False,
        extra=extra,
    )


def plain_s3_get(http: httpx.Client, s3: Any, bucket: str, name: str, dst: Path) -> None:
    """The ``plain-s3`` baseline of a download: a presigned GET of ``name`` streamed to the
    file ``dst``, nothing checked or decrypted."""
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": name}, ExpiresIn=600
    )
    # Into a new file, as Carevault's client writes: rewriting the previous contender's output
    # in place makes ext4 start writing the file to disk when it is closed (auto_da_alloc),
    # and that writeback then slowed whichever contender ran next (~30 ms of a 64 MiB get).
    dst.unlink(missing_ok=True)
    with http.stream("GET", url) as response, dst.open("wb") as out:
        response.raise_for_status()
        for piece in response.iter_bytes():
            out.write(piece)


def plain_s3_gets(
    http: httpx.Client,
    s3: Any,
    bucket: str,
    wanted: Sequence[tuple[str, Path]],
    *,
    concurrency: int = 1,
) -> None:
    """``plain_s3_get`` of each (object name, file), ``concurrency`` at a time (in order, on
    the calling thread, at 1): the baseline for a contender that fetches as many at once."""
    if concurrency <= 1:
        for name, dst in wanted:
            plain_s3_get(http, s3, bucket, name, dst)
        return
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for done in [pool.submit(plain_s3_get, http, s3, bucket, n, d) for n, d in wanted]:
            done.result()


def _round(value: float) -> float:
    return float(f"{value:.4g}")


# The kernel charges a child, at exec, with the peak memory of the process it was forked from;
# a benchmark process that has grown would inflate every figure. So the child is started by a
# small launcher interpreter (no site packages), which reports the child's peak from wait4.
_LAUNCHER = """
import os, sys
out = os.open(os.devnull, os.O_WRONLY)
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ,
                      file_actions=[(os.POSIX_SPAWN_DUP2, out, 1)])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""
_RUN_PICKLED = "import pickle, sys; pickle.loads(bytes.fromhex(sys.argv[1]))()"


def peak_rss_of_child(target: Sequence[str] | Callable[[], object]) -> float:
    """Peak resident memory, in MiB, of a child process.

    ``target`` is a command line, or a picklable callable (a module-level function or a
    ``functools.partial`` of one) run in a fresh interpreter that sees this one's
    ``sys.path``. Either way the child starts from a small launcher, so its figure is its
    own and not this process's (the launcher's few MiB are the floor of what can be seen).
    A child that fails raises RuntimeError.
    """
    env = dict(os.environ)
    if callable(target):
        argv = [sys.executable, "-c", _RUN_PICKLED, pickle.dumps(target).hex()]
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    else:
        argv = list(target)
    launched = subprocess.run(
        [sys.executable, "-S", "-I", "-c", _LAUNCHER, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        exit_code, peak = (int(field) for field in launched.stdout.split())
    except ValueError as exc:
        raise RuntimeError(f"could not launch {argv[0]}: {launched.stderr.strip()}") from exc
    if exit_code != 0:
        raise RuntimeError(f"{argv[0]} exited with {exit_code}: {launched.stderr.strip()[-500:]}")
    return peak * _MAXRSS_UNIT / _MIB
