"""``carevault admin rotate root|child CHILD`` and ``carevault admin jobs``: key rotations as
jobs the key service runs in short batches (releases and uploads go on), followed from an
admin's device. ``--dry-run`` counts what would change and changes nothing; ``--wait`` follows
the job to its end (a Rich progress bar on a terminal, nothing for scripts and pipes); with
``--json`` the answer is JSON, as for every command. ``carevault admin jobs cancel JOB`` stops
a running job after its current batch (every wrap stays openable)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.core import TyperGroup

from clients.output import emit_json, err_console, friendly, options, say, table
from clients.session import connect
from vault.client import Client
from vault.client.rotation import Job, RotationStarted


class _JobsGroup(TyperGroup):
    """``jobs`` lists, ``jobs JOB`` shows one, ``jobs cancel JOB`` cancels one: a first word
    that names no subcommand is a job id (job ids are hex, never ``cancel``)."""

    # Typed loosely: typer's click is vendored (typer._click), not importable by name.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            return "show", self.commands["show"], args
        return super().resolve_command(ctx, args)


rotate_app = typer.Typer(help="Rotate the root key or one child's key (a job).")
jobs_app = typer.Typer(
    cls=_JobsGroup,
    invoke_without_command=True,
    help="Rotation jobs: list them, show one (jobs JOB), cancel one (jobs cancel JOB).",
)
POLL_S = 0.5

DryRun = Annotated[bool, typer.Option("--dry-run", help="Count what would change; change nothing.")]
Wait = Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def register(app: typer.Typer) -> None:
    """Add ``rotate`` and ``jobs`` to ``carevault admin``."""
    app.add_typer(rotate_app, name="rotate")
    app.command("rewrap")(rewrap)
    app.add_typer(jobs_app, name="jobs")


@rotate_app.command("root")
@friendly
def rotate_root(ctx: typer.Context, dry_run: DryRun = False, wait: Wait = False) -> None:
    """Add a root key version and rewrap every child key version under it."""
    _started(ctx, connect(ctx).rotate("root", dry_run=dry_run), wait=wait)


@rotate_app.command("child")
@friendly
def rotate_child(
    ctx: typer.Context,
    child_id: Annotated[str, typer.Argument(help="The child whose key is rotated.")],
    dry_run: DryRun = False,
    wait: Wait = False,
) -> None:
    """A new key version for one child (e.g. after a suspected compromise): the old version
    turns decrypt-only and every record key of the child is rewrapped under the new one."""
    _started(ctx, connect(ctx).rotate("child", child_id=child_id, dry_run=dry_run), wait=wait)


@jobs_app.callback()
@friendly
def jobs(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Rotation jobs, newest first: progress, rate and time left."""
    if ctx.invoked_subcommand is None:
        _table(ctx, connect(ctx).jobs(), as_json=as_json)


@jobs_app.command("show", hidden=True)
@friendly
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job.")],
    as_json: AsJson = False,
) -> None:
    """One job: progress, rate and time left."""
    _table(ctx, [connect(ctx).job(job_id)], as_json=as_json)


@jobs_app.command("cancel")
@friendly
def cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The running job to cancel.")],
    as_json: AsJson = False,
) -> None:
    """Cancel a running job (it stops after its current batch).

    Every wrap stays openable (wraps not yet moved stay under the old, decrypt-only version)
    and a new job may start on its key. A job that has ended already, or an unknown one, is
    refused."""
    job = connect(ctx).cancel_job(job_id)
    if as_json or _json(ctx):
        emit_json(job)
    else:
        say(
            f"Job {job.job_id} cancelled: {job.done} of {job.total} had moved; the rest stay "
            "under their old key versions, which still decrypt."
        )


@friendly
def rewrap(
    ctx: typer.Context,
    child_id: Annotated[str, typer.Argument(help="The child whose wraps are moved.")],
    dry_run: DryRun = False,
    wait: Wait = False,
) -> None:
    """Move every record key wrap of the child still under an older key version onto its
    active version, without a new version (after a cancelled rotation; before trimming)."""
    _started(ctx, connect(ctx).rotate("rewrap", child_id=child_id, dry_run=dry_run), wait=wait)


def _table(ctx: typer.Context, found: list[Job], *, as_json: bool) -> None:
    if as_json or _json(ctx):
        emit_json(found)
        return
    table(
        "Rotation jobs",
        ["job id", "kind", "target", "state", "done", "total", "per second", "time left"],
        [
            (
                job.job_id,
                job.kind,
                job.target or "",
                job.state + (f": {job.error}" if job.error else ""),
                job.done,
                job.total,
                "" if job.rate_per_s is None else f"{job.rate_per_s:,.0f}",
                "" if job.eta_s is None else f"{job.eta_s:,.0f} s",
            )
            for job in found
        ],
    )


def _json(ctx: typer.Context) -> bool:
    return options(ctx).json


def _started(ctx: typer.Context, started: RotationStarted, *, wait: bool) -> None:
    as_json = _json(ctx)
    if started.job is None:
        if as_json:
            emit_json(started)
        else:
            target = f"child {started.child_id}'s key" if started.child_id else "the root key"
            if started.kind == "rewrap":
                target = f"child {started.child_id}"
            unit = "child key versions" if started.kind == "root" else "record key wraps"
            doing = (
                f"re-wrapping onto {target}'s active version {started.to_version}"
                if started.kind == "rewrap"
                else f"rotating {target} to version {started.to_version}"
            )
            say(f"Dry run: {doing} would rewrap {started.would_change} {unit}. Nothing changed.")
        return
    job = _follow(connect(ctx), started.job, show=not as_json) if wait else started.job
    if as_json:
        emit_json(job)
    elif job.running:
        say(f"Job {job.job_id} started: follow it with `carevault admin jobs {job.job_id}`.")
    else:
        say(f"Job {job.job_id} {job.state}: {job.done} of {job.total} rewrapped.")
    if job.state == "failed":
        raise typer.Exit(1)


def _follow(client: Client, job: Job, *, show: bool) -> Job:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not show or not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(f"{job.kind} rotation", total=job.total or None)
        while job.running:
            progress.update(task, completed=job.done, total=max(job.total, job.done) or None)
            time.sleep(POLL_S)
            job = client.job(job.job_id)
    return job
