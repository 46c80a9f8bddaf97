"""``carevault-keyservice``: run the key service and its host-side admin commands.

The host-side commands talk to the database directly, so they run on the service's host with
its settings (``CAREVAULT_*``), never over the network.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import insert, select

from keyservice import backup as backup_db
from keyservice import host_audit
from keyservice.audit import offsite
from keyservice.audit.chain import AuditEvent
from keyservice.audit.head import checkpoint_head
from keyservice.audit.verify import ChainReport, verify_chain
from keyservice.catalog.jobs import JobConflict, get_job
from keyservice.catalog.rotation import (
    child_keys_by_provider,
    child_keys_to_rewrap,
    start_root_rotation,
)
from keyservice.db import make_engine, upgrade_to_head
from keyservice.db.engine import reading
from keyservice.db.tables import principals
from keyservice.errors import AuditChainError, InvalidChangeError
from keyservice.host_people import enrolment_code, issue_at_host, proposals_app
from keyservice.ids import new_id
from keyservice.keyfiles import load_or_create_secret
from keyservice.keys import parse_root_key
from vault.storage import StorageError

app = typer.Typer(
    help="Run the Carevault key service and its admin commands.", no_args_is_help=True
)
audit_app = typer.Typer(help="Check and sign the audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(proposals_app, name="proposals")
app.command("enrolment-code")(enrolment_code)


_now = host_audit.now
_settings = host_audit.host_settings
_audit_key = host_audit.audit_key
_audit_mac = host_audit.audit_mac
_append = host_audit.append_at_host


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8800, help="TCP port to listen on."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Run the key service under uvicorn (migrating the database first).

    Refuses to start, with one line on stderr and exit status 78, when a setting is wrong or
    the database, blob store or root key cannot be reached (docs/OPERATIONS.md)."""
    import logging.config

    import uvicorn

    from keyservice.ops.logs import uvicorn_log_config
    from keyservice.ops.startup import start_app, tune_gc

    settings = _settings()
    log_config = uvicorn_log_config(settings.log_level)
    logging.config.dictConfig(log_config)
    application = start_app(settings)
    tune_gc()
    uvicorn.run(
        # Several workers each import the application (keyservice/asgi.py) after the checks.
        application if workers == 1 else "keyservice.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_config=log_config,
        proxy_headers=True,
        # SIGTERM: stop accepting, let in-flight requests (a release and its audit entry)
        # finish for up to this long, then close.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


@app.command()
def migrate() -> None:
    """Bring the database to the newest schema."""
    settings = _settings()
    upgrade_to_head(make_engine(settings.database_url))
    typer.echo("database is at the newest schema")


@app.command()
def bootstrap(
    name: str = typer.Option("Administrator", help="Display name of the first admin."),
    force_new_code: bool = typer.Option(
        False, "--force-new-code", help="Issue a new code for the existing first admin."
    ),
) -> None:
    """Create the first admin and print a one-time enrolment code for their device."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    with engine.connect() as connection:
        admins = [
            row.principal_id
            for row in connection.execute(
                select(principals.c.principal_id, principals.c.roles)
                .where(principals.c.kind == "staff", principals.c.revoked_at.is_(None))
                .order_by(principals.c.created_at)
            )
            if "admin" in row.roles.split()
        ]
        if admins and not force_new_code:
            typer.echo(
                "an admin already exists; use --force-new-code to issue a new enrolment code "
                "for the first admin",
                err=True,
            )
            raise typer.Exit(code=1)
        now = _now()
        if admins:
            principal_id = admins[0]
        else:
            principal_id = new_id()
            connection.execute(
                insert(principals).values(
                    principal_id=principal_id,
                    kind="staff",
                    display_name=name,
                    roles="admin",
                    created_at=now,
                )
            )
        # A new code for an admin who had devices is a recovery: marked, and announced.
        issued = issue_at_host(connection, principal_id, now=now)
        code, expires_at, recovering = issued.code, issued.expires_at, issued.recovering
        _append(
            connection,
            settings,
            AuditEvent(
                action="principal.bootstrap",
                outcome="allow",
                detail={
                    "principal_id": principal_id,
                    "new_principal": not admins,
                    "recovery": recovering,
                },
            ),
        )
        connection.commit()
    typer.echo(f"principal_id: {principal_id}")
    typer.echo(f"enrolment code (single use, expires {expires_at:%Y-%m-%dT%H:%M:%SZ}): {code}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit chain and its MACs, check its checkpoints in the database and the
    checkpoint store; name the first broken entry and exit 1 if there is one (2 if the store
    cannot be read)."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    store = offsite.open_store(settings, token_key=load_or_create_secret(settings.token_key_file))
    try:
        with engine.connect() as connection, reading(connection):
            if engine.dialect.name == "postgresql":
                # One snapshot: the service's appends meanwhile must not look like damage.
                connection.execution_options(isolation_level="REPEATABLE READ")
            report = verify_chain(
                connection,
                _audit_key(settings).public_key(),
                mac=_audit_mac(settings),
                store=store,
            )
    except (StorageError, OSError) as exc:
        typer.echo(
            f"could not read the audit checkpoints in {settings.checkpoint_store} "
            f"({type(exc).__name__}); check CAREVAULT_CHECKPOINT_STORE and its credentials "
            "and run verify again",
            err=True,
        )
        raise typer.Exit(code=2) from None
    if report.ok:
        typer.echo(f"audit chain intact: {report.entries} entries, {_protected(report)}")
        return
    where = "" if report.broken_seq is None else f" at entry {report.broken_seq}"
    typer.echo(f"audit chain broken{where}: {report.problem}", err=True)
    raise typer.Exit(code=1)


def _protected(report: ChainReport) -> str:
    if report.checkpoint_seq is None:
        return "no verified checkpoint: a truncation of any of them would go unnoticed"
    return (
        f"{report.after_checkpoint} entries after the last verified checkpoint at seq "
        f"{report.checkpoint_seq} ({report.checkpoint_in})"
    )


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's current head now, in the checkpoint store and the database."""
    settings = _settings()
    token_key = load_or_create_secret(settings.token_key_file)
    try:
        signed = checkpoint_head(
            make_engine(settings.database_url),
            mac=_audit_mac(settings),
            key=_audit_key(settings),
            store=offsite.open_store(settings, token_key=token_key),
            now=_now(),
        )
    except AuditChainError as exc:
        typer.echo(f"nothing signed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if signed is None:
        typer.echo("the audit log is empty; nothing to sign")
        return
    typer.echo(f"checkpoint: seq {signed.seq} hash {signed.hash}")


@app.command("rotate-root")
def rotate_root() -> None:
    """Add a root key version and rewrap every child key under it (blobs are untouched): the
    same recorded, resumable job as POST /v1/admin/rotations, run here to its end."""
    _run_root_job("root")


root_key_app = typer.Typer(help="Move the root key between providers.", no_args_is_help=True)
app.add_typer(root_key_app, name="root-key")


@root_key_app.command("migrate")
def root_key_migrate(
    to: str = typer.Option(..., "--to", help="The provider moved to, e.g. kms:KEY_ID."),
) -> None:
    """Rewrap every child key version still wrapped by CAREVAULT_ROOT_KEY_PREVIOUS under
    CAREVAULT_ROOT_KEY (which must be --to), in resumable batches, while the service runs."""
    settings = _settings()
    if settings.root_key_previous is None or parse_root_key(to) != parse_root_key(
        settings.root_key
    ):
        typer.echo(
            f"to move to {to}: restart every instance with CAREVAULT_ROOT_KEY={to} and "
            "CAREVAULT_ROOT_KEY_PREVIOUS=<the provider in use until now>, then run this "
            "command with the same settings",
            err=True,
        )
        raise typer.Exit(code=1)
    _run_root_job("migrate")


@root_key_app.command("status")
def root_key_status() -> None:
    """How many live child key versions each root provider wrapped: once none is left under
    the previous provider, CAREVAULT_ROOT_KEY_PREVIOUS can be dropped."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    with engine.connect() as connection:
        counts = child_keys_by_provider(connection)
    for provider, count in sorted(counts.items()):
        typer.echo(f"{provider}: {count} child key versions")


def _run_root_job(kind: str) -> None:
    from keyservice.app import build_state
    from keyservice.jobs import JobRunner

    state = build_state(_settings())
    runner = JobRunner(state)
    lease = timedelta(seconds=state.settings.job_lease_seconds)
    with state.engine.connect() as connection:
        try:
            started = start_root_rotation(
                connection,
                state.root,
                kind=kind,
                started_by=None,
                now=_now(),
                lease=(runner.owner, lease),
            )
        except JobConflict:
            typer.echo(
                "a root rotation or migration job already runs: wait for it to finish "
                "(carevault admin jobs) and run this again if still needed",
                err=True,
            )
            raise typer.Exit(code=1) from None
        except InvalidChangeError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        _append(
            connection,
            state.settings,
            AuditEvent(
                action="root_key.rotate" if kind == "root" else "root_key.migrate",
                outcome="allow",
                detail={
                    "root_version": started.to_version,
                    "child_keys": started.total,
                    "job_id": started.job_id,
                },
            ),
        )
        connection.commit()
    assert started.job_id is not None
    job = runner.run(started.job_id)
    with state.engine.connect() as connection:
        ended = get_job(connection, started.job_id)
    if ended is not None and ended.state == "cancelled":
        typer.echo(
            f"job {started.job_id} was cancelled after {ended.done} child key versions; "
            "the rest stay under the previous root key version or provider, which still opens "
            "them; a new job moves them",
            err=True,
        )
        raise typer.Exit(code=1)
    if job is None or job.state != "done":
        typer.echo(
            f"job {started.job_id} did not finish here; the service resumes it "
            "(carevault admin jobs)",
            err=True,
        )
        raise typer.Exit(code=1)
    typer.echo(
        f"root key version {started.to_version}; rewrapped {job.done} child key versions "
        f"({state.root.identity()})"
    )
    with state.engine.connect() as connection:
        left = child_keys_to_rewrap(connection, state.root)
    if kind == "migrate":
        typer.echo(
            f"{left} child key versions still need the previous provider"
            + ("; CAREVAULT_ROOT_KEY_PREVIOUS can be dropped" if left == 0 else "")
        )


@app.command()
def sweep(
    older_than_hours: float | None = typer.Option(
        None, help="Age of abandoned uploads to remove (default: the service setting)."
    ),
) -> None:
    """Remove uploads never committed (objects, parts, temporary files), unfinished multipart
    uploads nothing owns, and blobs of deleted records. Exits 1 if some must be retried."""
    from keyservice.app import build_state
    from keyservice.sweep import claim_abandoned, clean_store

    state = build_state(_settings())
    hours = state.settings.pending_upload_hours if older_than_hours is None else older_than_hours
    now = _now()
    cutoff = now - timedelta(hours=hours)
    with state.engine.connect() as connection:
        abandoned = claim_abandoned(connection, cutoff=cutoff)
        _append(
            connection,
            state.settings,
            AuditEvent(action="uploads.sweep", outcome="allow", detail={"abandoned": abandoned}),
        )
        connection.commit()
    # The versions' keys are gone and committed first: what is left in the store is unreadable.
    report = clean_store(state.engine, state.blobs, cutoff=cutoff, now=now)
    report.abandoned = abandoned
    for failure in report.failures:
        typer.echo(failure, err=True)
    typer.echo(report.summary())
    if report.failures:
        raise typer.Exit(code=1)


@app.command("backup")
def backup_command(
    path: Annotated[Path, typer.Argument(help="The backup file to create (never overwritten).")],
) -> None:
    """Copy the database into one new file while the service runs (PostgreSQL: pg_dump;
    SQLite: its online backup API). The root key, audit keys and blobs are backed up apart:
    docs/BACKUPS.md."""
    settings = _settings()
    if path.exists():
        typer.echo(f"no backup made: {path} exists: a backup never overwrites a file", err=True)
        raise typer.Exit(code=1)
    engine = make_engine(settings.database_url)
    # Audited first, so that the backup holds its own entry: who restores it sees when it
    # was taken.
    with engine.connect() as connection:
        _append(
            connection,
            settings,
            AuditEvent(
                action="backup.start", outcome="allow", detail={"kind": engine.dialect.name}
            ),
        )
        connection.commit()
    engine.dispose()
    try:
        made = backup_db.backup(settings.database_url, path)
    except backup_db.BackupError as exc:
        typer.echo(f"no backup made: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"backed up {made.kind} database to {path} ({made.size} bytes)")


@app.command("restore")
def restore_command(
    path: Annotated[Path, typer.Argument(help="A file made by `carevault-keyservice backup`.")],
) -> None:
    """Restore a backup into the new, empty database CAREVAULT_DATABASE_URL names (refused if
    it holds any table), migrate it, and verify its audit chain: the backup's own chain and
    checkpoints must verify; checkpoints in the store naming entries written after the backup
    are reported as lost entries (docs/BACKUPS.md)."""
    settings = _settings()
    for name, key_file in (
        ("CAREVAULT_AUDIT_KEY_FILE", settings.audit_key_file),
        ("CAREVAULT_AUDIT_MAC_KEY_FILE", settings.audit_mac_key_file),
    ):
        # Never made up here: a new key would make the restored chain look forged.
        if not key_file.exists():
            typer.echo(
                f"nothing restored: the audit key file {key_file} ({name}) does not exist: put "
                "the deployment's audit keys back first (docs/BACKUPS.md)",
                err=True,
            )
            raise typer.Exit(code=1)
    engine = make_engine(settings.database_url)
    try:
        made = backup_db.restore(settings.database_url, path, engine)
    except backup_db.BackupError as exc:
        typer.echo(str(exc) if exc.refused else f"restore failed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    upgrade_to_head(engine)
    into = backup_db.describe(settings.database_url)
    typer.echo(f"restored {made.kind} database from {path} into {into}")
    store = offsite.open_store(settings, token_key=load_or_create_secret(settings.token_key_file))
    public, mac = _audit_key(settings).public_key(), _audit_mac(settings)
    with engine.connect() as connection, reading(connection):
        own = verify_chain(connection, public, mac=mac, store=None)
    if not own.ok:
        where = "" if own.broken_seq is None else f" at entry {own.broken_seq}"
        typer.echo(
            f"the restored audit chain is broken{where}: {own.problem}. Do not serve from this "
            "database: drop it and restore an intact backup",
            err=True,
        )
        raise typer.Exit(code=1)
    try:
        with engine.connect() as connection, reading(connection):
            report = verify_chain(connection, public, mac=mac, store=store)
    except (StorageError, OSError) as exc:
        typer.echo(
            f"could not read the audit checkpoints in {settings.checkpoint_store} "
            f"({type(exc).__name__}); the backup's own chain verified ({own.entries} entries): "
            "run `audit verify` once the store is reachable",
            err=True,
        )
        raise typer.Exit(code=2) from None
    detail: dict[str, object] = {"kind": made.kind, "entries": own.entries}
    if report.ok:
        typer.echo(f"audit chain intact: {report.entries} entries, {_protected(report)}")
    elif report.broken_seq is not None and report.broken_seq > own.entries:
        # The store holds checkpoints of entries written after the backup: a restore is a
        # truncation, and the store is what proves it. Said here, and kept in the chain.
        detail["lost_from"] = own.entries + 1
        typer.echo(
            f"audit chain intact up to the backup ({own.entries} entries), but the checkpoint "
            f"store names entry {report.broken_seq}: the audit entries (and every change) "
            f"made after the backup, from entry {own.entries + 1}, are lost. `audit verify` "
            "will keep reporting this cut; this message and the backup.restore entry say why "
            "(docs/BACKUPS.md, 'Restoring')",
            err=True,
        )
    else:
        where = "" if report.broken_seq is None else f" at entry {report.broken_seq}"
        typer.echo(
            f"the restored audit chain disagrees with the checkpoint store{where}: "
            f"{report.problem}. Is this a backup of this deployment? Do not serve from it",
            err=True,
        )
        raise typer.Exit(code=1)
    with engine.connect() as connection:
        _append(
            connection,
            settings,
            AuditEvent(action="backup.restore", outcome="allow", detail=detail),
        )
        connection.commit()
    engine.dispose()


def main() -> None:
    app()
