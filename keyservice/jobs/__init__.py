"""Rotation jobs run inside the key service process (decision 0017)."""

from keyservice.jobs.runner import JobRunner, jobs_on_time

__all__ = ["JobRunner", "jobs_on_time"]
