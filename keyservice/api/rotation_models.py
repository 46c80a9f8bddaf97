"""Request and response models of the rotation and jobs routes (api/rotation.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from keyservice.api.schemas import Id, Strict
from keyservice.catalog.jobs import Job


class RotationCreate(Strict):
    # rewrap: move a child's wraps onto its active version, no new version (decision 0023).
    kind: Literal["root", "child", "rewrap"]
    child_id: Id | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _child_only_for_child(self) -> RotationCreate:
        if (self.kind != "root") != (self.child_id is not None):
            raise ValueError("child_id is required for kinds child and rewrap, and only for them")
        return self


class JobPublic(BaseModel):
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
    # Wraps per second so far, and the seconds left at that rate (None until measurable).
    rate_per_s: float | None
    eta_s: float | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        elapsed = ((job.finished_at or job.updated_at) - job.created_at).total_seconds()
        rate = job.done / elapsed if job.done and elapsed > 0 else None
        left = max(job.total - job.done, 0)
        eta = 0.0 if job.state != "running" else (left / rate if rate else None)
        return cls(
            job_id=job.job_id,
            kind=job.kind,
            target=job.target,
            state=job.state,
            to_version=job.to_version,
            total=job.total,
            done=job.done,
            started_by=job.started_by,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            error=job.error,
            rate_per_s=rate,
            eta_s=eta,
        )


class RotationStarted(BaseModel):
    """A job started, or with ``dry_run`` what it would change (``job`` None)."""

    dry_run: bool
    kind: str
    child_id: str | None
    to_version: int
    would_change: int
    job: JobPublic | None


class MinDecryptionVersion(Strict):
    version: int = Field(ge=1, le=2**31 - 1)


class KeyVersionPublic(BaseModel):
    version: int
    state: str
    # Record key wraps that still use this version.
    wraps: int


class ChildKeyVersions(BaseModel):
    child_id: str
    min_decryption_version: int | None
    versions: list[KeyVersionPublic]
