"""Shared helpers for benchmarks: interleaved rounds, medians, records, child peak RSS.

A benchmark compares Carevault ("ours") with baselines by running every contender once per
round, in a rotating order, so that drift in the machine (frequency scaling, caches, other
load) falls on all of them alike; it reports medians over rounds.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection

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


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _report_peak(fn: Callable[[], object], conn: Connection) -> None:
    fn()
    conn.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    conn.close()


def peak_rss_of_child(target: Sequence[str] | Callable[[], object]) -> float:
    """Peak resident memory, in MiB, of a child process.

    ``target`` is either a command line, run to completion and measured by ``os.wait4``, or a
    picklable callable, run in a freshly spawned interpreter that reports its own peak on
    return (fork would let the child inherit, and be charged for, this process's memory).
    A child that fails raises RuntimeError.
    """
    if callable(target):
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_report_peak, args=(target, sender))
        child.start()
        sender.close()
        try:
            peak = int(receiver.recv())
        except EOFError as exc:
            raise RuntimeError("the measured callable failed in its child process") from exc
        finally:
            child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"the measured child exited with {child.exitcode}")
        return peak * _MAXRSS_UNIT / _MIB
    popen = subprocess.Popen(list(target), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    if popen.returncode != 0:
        raise RuntimeError(f"{target[0]} exited with {popen.returncode}")
    return usage.ru_maxrss * _MAXRSS_UNIT / _MIB
