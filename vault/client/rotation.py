"""Rotation jobs from an admin's device (issue 15, part 3): start a root or child key
rotation (or ask what one would change), and follow the jobs' progress.

A rotation runs in the key service as a recorded job, in short batches, resumed after a
restart; releases and uploads go on meanwhile. One job per key at a time: a second one is
refused (``Conflict``), a child that does not exist is ``NotFound``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vault.client.fields import Fields, MalformedAnswer
from vault.client.transport import KeyServiceTransport


@dataclass(frozen=True)
class Job:
    """A rotation job: ``done`` of ``total`` wraps (a root job: child key versions) moved."""

    job_id: str
    kind: str
    target: str | None
    state: str
    to_version: int | None
    total: int
    done: int
    started_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None
    # Per second so far, and seconds left at that rate (None until measurable).
    rate_per_s: float | None
    eta_s: float | None

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class RotationStarted:
    """A job started (``job``), or with ``dry_run`` what it would change (``job`` None)."""

    dry_run: bool
    kind: str
    child_id: str | None
    to_version: int
    would_change: int
    job: Job | None


def _number(fields: Fields, name: str) -> float | None:
    value = fields.whole().get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedAnswer(f"a job: no number in {name!r}")
    return float(value)


def job(body: object) -> Job:
    fields = Fields(body, "a job")
    return Job(
        job_id=fields.text("job_id"),
        kind=fields.text("kind"),
        target=fields.opt_text("target"),
        state=fields.text("state"),
        to_version=fields.opt_integer("to_version"),
        total=fields.integer("total"),
        done=fields.integer("done"),
        started_by=fields.opt_text("started_by"),
        created_at=fields.time("created_at"),
        updated_at=fields.time("updated_at"),
        finished_at=fields.opt_time("finished_at"),
        error=fields.opt_text("error"),
        rate_per_s=_number(fields, "rate_per_s"),
        eta_s=_number(fields, "eta_s"),
    )


def jobs(body: object) -> list[Job]:
    if not isinstance(body, list):
        raise MalformedAnswer("the jobs are not a JSON list")
    return [job(item) for item in body]


def started(body: object) -> RotationStarted:
    fields = Fields(body, "a rotation")
    raw = fields.whole().get("job")
    return RotationStarted(
        dry_run=fields.flag("dry_run", default=False),
        kind=fields.text("kind"),
        child_id=fields.opt_text("child_id"),
        to_version=fields.integer("to_version"),
        would_change=fields.integer("would_change"),
        job=None if raw is None else job(raw),
    )


class RotationCalls:
    """Mixed into ``Client``; admin calls, each signed by the client's device."""

    _api: KeyServiceTransport

    def rotate(
        self, kind: str, *, child_id: str | None = None, dry_run: bool = False
    ) -> RotationStarted:
        """Start a ``root`` or ``child`` key rotation job, or a ``rewrap`` job (a child's wraps
        moved onto its active version, no new version); with ``dry_run``, only count what it
        would change. Refused: a job already running on the key (``Conflict``), an unknown
        child (``NotFound``)."""
        body: dict[str, object] = {"kind": kind, "dry_run": dry_run}
        if child_id is not None:
            body["child_id"] = child_id
        return self._api.post("/v1/admin/rotations", started, body)

    def jobs(self) -> list[Job]:
        """The newest jobs first, with progress, rate and ETA."""
        return self._api.get("/v1/admin/jobs", jobs)

    def job(self, job_id: str) -> Job:
        return self._api.get(f"/v1/admin/jobs/{job_id}", job)

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a running job: it stops after its current batch, every wrap stays openable
        and a new job on its key may start. Refused: no such job (``NotFound``), a job that
        has ended already (``Conflict``)."""
        return self._api.post(f"/v1/admin/jobs/{job_id}/cancel", job)
