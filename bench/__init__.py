"""Carevault benchmarks: ``python -m bench --list | NAME | --all [--quick]``.

Each benchmark is a module ``bench/<name>.py`` (names starting with ``_`` are helpers) with
``run(quick: bool) -> Iterator[dict[str, object]]``. Every record it yields is printed as one
JSON line with at least ``bench``, ``metric``, ``value`` and ``unit``; a comparison adds
``baseline``, ``baseline_value`` and ``ratio``, oriented so that above 1 means Carevault is
better (ours / baseline for rates, baseline / ours for times, sizes and memory). Build
records with ``rate_record`` and ``time_record`` so the orientation is always right.
"""

from __future__ import annotations

from bench._harness import (
    Record,
    alternate,
    cpu_seconds,
    median,
    peak_rss_of_child,
    rate_record,
    seconds,
    time_record,
)

__all__ = [
    "Record",
    "alternate",
    "cpu_seconds",
    "median",
    "peak_rss_of_child",
    "rate_record",
    "seconds",
    "time_record",
]
