"""What operating the service costs its key releases: ``python -m bench ops``.

The same load as ``bench keyservice`` (4 processes × 4 connections, single-record signed
``POST /v1/keys/release``, each with its durable audit entry, embedded default) against a real
key service process, contenders alternating rounds in one run, medians:

- ``release_throughput_scraped_1hz`` (req/s): while a scraper reads ``/metrics`` once a second
  (as Prometheus would, with the bearer token), against ``unscraped`` = the same service
  under the same load with no scraper. Bar: ratio ≥ 0.95 (issue 16).
- ``release_throughput_access_log`` (req/s, full runs only): a service writing its JSON
  access line per request (``CAREVAULT_LOG_LEVEL=INFO``, the default) against
  ``log_level_warning``, a second service on the same machine that writes none; both run
  all the time, loaded in turn.

``--quick`` runs the scrape comparison alone, on 16 records, 3 rounds of 2 s each way.
- ``metrics_scrape_ms``: the median time a scrape took during the scraped runs (no baseline).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench._harness import Record, alternate, median, rate_record, time_record
from bench.keyservice import PROCESSES, Caller, _ready, _run_load, _setup
from clients.localservice import local_keyservice

BENCH = "ops"
TOKEN = "bench-ops-metrics-token-0123456789abcdef"
SCRAPE_EVERY_S = 1.0
RECORDS = 64
QUICK_RECORDS = 16


class Scraper:
    """Reads ``/metrics`` every ``SCRAPE_EVERY_S`` on a thread of its own, timing each read."""

    def __init__(self, base_url: str) -> None:
        self._url = f"{base_url}/metrics"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        self.took: list[float] = []
        self.size = 0

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(headers={"authorization": f"Bearer {TOKEN}"}, timeout=30.0) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                answer = http.get(self._url)
                answer.raise_for_status()
                self.took.append(time.perf_counter() - started)
                self.size = len(answer.content)
                self._stop.wait(max(0.0, SCRAPE_EVERY_S - (time.perf_counter() - started)))


def run(quick: bool) -> Iterator[Record]:
    duration, rounds, records = (2.0, 3, QUICK_RECORDS) if quick else (10.0, 5, RECORDS)
    with tempfile.TemporaryDirectory(prefix="carevault-bench-ops-") as work, ExitStack() as stack:
        logged = stack.enter_context(
            local_keyservice(Path(work) / "logged", extra_env={"CAREVAULT_METRICS_TOKEN": TOKEN})
        )
        callers: dict[str, tuple[Caller, list[str]]] = {"logged": _setup(logged, records)}
        if not quick:
            quiet = stack.enter_context(
                local_keyservice(Path(work) / "quiet", extra_env={"CAREVAULT_LOG_LEVEL": "WARNING"})
            )
            callers["quiet"] = _setup(quiet, records)
        scrapes: list[float] = []
        sizes: list[int] = []

        def load(name: str) -> float:
            caller, ids = callers[name]
            return _run_load(pool, caller, "release", ids, duration).rate

        def scraped() -> float:
            with Scraper(logged.base_url) as scraper:
                rate = load("logged")
            scrapes.extend(scraper.took)
            sizes.append(scraper.size)
            return rate

        contenders: dict[str, Callable[[], float]] = {
            "unscraped": lambda: load("logged"),
            "scraped": scraped,
        }
        if not quick:
            contenders["quiet"] = lambda: load("quiet")
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as pool:
            list(pool.map(_ready, range(PROCESSES)))
            for caller, ids in callers.values():  # warm the services up
                _run_load(pool, caller, "release", ids, 0.5)
            runs = alternate(contenders, rounds)
    extra = {
        "concurrency": PROCESSES * 4,
        "duration_s": duration,
        "rounds": rounds,
        "scrape_every_s": SCRAPE_EVERY_S,
    }
    yield rate_record(
        bench=BENCH,
        metric="release_throughput_scraped_1hz",
        value=median(runs["scraped"]),
        unit="req/s",
        baseline="unscraped",
        baseline_value=median(runs["unscraped"]),
        scrapes=len(scrapes),
        **extra,
    )
    if "quiet" in runs:
        yield rate_record(
            bench=BENCH,
            metric="release_throughput_access_log",
            value=median(runs["unscraped"]),
            unit="req/s",
            baseline="log_level_warning",
            baseline_value=median(runs["quiet"]),
            **extra,
        )
    yield time_record(
        bench=BENCH,
        metric="metrics_scrape_ms",
        value=median(scrapes) * 1000,
        unit="ms",
        scrape_bytes=max(sizes),
        scrapes=len(scrapes),
    )
