"""``/metrics``: the service's counters in Prometheus' text format, through prometheus-client.

One registry per application (tests start several in one process). Labels are bounded sets
only: method, route template, status, outcome, basis, decision, action, reason, job kind and
state. No id, name, key, address or path is ever a label (docs/OPERATIONS.md lists every
metric). What lives in the database (nonces remembered, rotation jobs' progress) is read when
scraped, so a scrape costs two small queries and requests pay nothing for it.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from keyservice.auth.rejections import RejectionLedger
from keyservice.db.tables import rotation_jobs, seen_nonces

if TYPE_CHECKING:
    from keyservice.audit.group import AuditWrite
    from keyservice.state import ServiceState

# No *_created series: a counter's start time doubles the text and no dashboard reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

RELEASE_ACTION = "keys.release"
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self, state: ServiceState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "carevault_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "carevault_http_request_duration_seconds",
            "Time from a request's start to the end of its answer, by route template.",
            ["route"],
            buckets=_SECONDS,
            registry=r,
        )
        self.in_flight = Gauge(
            "carevault_http_requests_in_flight",
            "Requests being answered now (a scrape counts itself).",
            registry=r,
        )
        self.releases = Counter(
            "carevault_key_releases",
            "Key release requests committed, by outcome (allow: at least one key released).",
            ["outcome"],
            registry=r,
        )
        self.release_items = Counter(
            "carevault_key_release_items",
            "Record versions decided by key releases, by decision and basis.",
            ["decision", "basis"],
            registry=r,
        )
        self.audit_batch = Histogram(
            "carevault_audit_batch_entries",
            "Audit entries written per group commit.",
            buckets=_BATCH,
            registry=r,
        )
        self.audit_batch_seconds = Histogram(
            "carevault_audit_batch_seconds",
            "Time a group commit's transaction took (lock, append, index rows, commit).",
            buckets=_SECONDS,
            registry=r,
        )
        self.audit_wait = Histogram(
            "carevault_audit_commit_wait_seconds",
            "Time a request waited for its audit entry to be committed (queue and batch).",
            buckets=_SECONDS,
            registry=r,
        )
        self.rejections = Counter(
            "carevault_rejections",
            "Rejected requests (signature, device, nonce, rate limit, enrolment code), by "
            "audit action and reason.",
            ["action", "reason"],
            registry=r,
        )
        r.register(_DatabaseGauges(state))
        state.audit_group.on_batch = self.batch_written
        state.on_audited = self.audited
        if isinstance(state.rejections, CountedRejections):
            state.rejections.counted = self.rejected

    def batch_written(self, entries: int, seconds: float) -> None:
        self.audit_batch.observe(entries)
        self.audit_batch_seconds.observe(seconds)

    def audited(self, write: AuditWrite, waited: float) -> None:
        self.audit_wait.observe(waited)
        event = write.event
        if event.action != RELEASE_ACTION:
            return
        self.releases.labels(event.outcome).inc()
        items = event.detail.get("items") or ()
        # [record id, version, decision, basis, ...]: only the decision and basis are counted.
        tally = Tally((str(item[2]), str(item[3])) for item in items if len(item) >= 4)
        for (decision, basis), count in tally.items():
            self.release_items.labels(decision, basis).inc(count)

    def rejected(self, action: str, reason: str) -> None:
        self.rejections.labels(action, reason).inc()

    def answered(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(route).observe(seconds)


class CountedRejections(RejectionLedger):
    """The rejection ledger (keyservice/auth/rejections.py), counting what it is shown."""

    counted: Any = None

    def admit(self, event: Any) -> Any:
        if self.counted is not None:
            self.counted(event.action, str(event.detail.get("reason")))
        return super().admit(event)


class _DatabaseGauges(Collector):
    """Read at each scrape: the nonces remembered against replay, and rotation jobs."""

    def __init__(self, state: ServiceState) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nonces = GaugeMetricFamily(
            "carevault_nonce_cache_entries",
            "Nonces remembered against replay (all instances: the table is shared).",
        )
        jobs = GaugeMetricFamily(
            "carevault_rotation_jobs", "Rotation jobs, by kind and state.", labels=["kind", "state"]
        )
        done = GaugeMetricFamily(
            "carevault_rotation_job_wraps_done",
            "Wraps done by rotation jobs, by kind and state.",
            labels=["kind", "state"],
        )
        total = GaugeMetricFamily(
            "carevault_rotation_job_wraps_total",
            "Wraps rotation jobs have to do, by kind and state.",
            labels=["kind", "state"],
        )
        up = GaugeMetricFamily(
            "carevault_metrics_database_up",
            "Whether this scrape could read the database's gauges (1) or not (0).",
        )
        started = time.perf_counter()
        try:
            with self._state.engine.connect() as db:
                count = db.execute(select(func.count()).select_from(seen_nonces)).scalar_one()
                rows = db.execute(
                    select(
                        rotation_jobs.c.kind,
                        rotation_jobs.c.state,
                        func.count(),
                        func.coalesce(func.sum(rotation_jobs.c.done), 0),
                        func.coalesce(func.sum(rotation_jobs.c.total), 0),
                    ).group_by(rotation_jobs.c.kind, rotation_jobs.c.state)
                ).all()
                db.rollback()
        except Exception:  # a scrape reports the database as down, not a 500
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        nonces.add_metric([], count)
        for kind, state, n, wraps_done, wraps_total in rows:
            jobs.add_metric([kind, state], n)
            done.add_metric([kind, state], wraps_done)
            total.add_metric([kind, state], wraps_total)
        scrape = GaugeMetricFamily(
            "carevault_metrics_database_seconds", "Time this scrape's database reads took."
        )
        scrape.add_metric([], time.perf_counter() - started)
        yield from (up, nonces, jobs, done, total, scrape)
