"""``carevault-keyservice``: run the key service and its host-side admin commands.

The host-side commands talk to the database directly, so they run on the service's host with
its settings (``CAREVAULT_*``), never over the network.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, delete, insert, select

from keyservice.audit.chain import AuditEvent, Checkpointer, append
from keyservice.audit.checkpoints import write_checkpoint
from keyservice.audit.verify import verify_chain
from keyservice.catalog.rotation import rewrap_child_keys
from keyservice.db import make_engine, upgrade_to_head
from keyservice.db.tables import principals, record_versions, wrapped_record_keys
from keyservice.enrolment import issue_code
from keyservice.host_people import enrolment_code, proposals_app
from keyservice.ids import new_id
from keyservice.keyfiles import load_or_create_secret
from keyservice.keys import LocalFileRootKeyProvider
from keyservice.settings import Settings
from vault.storage import StorageError

app = typer.Typer(
    help="Run the Carevault key service and its admin commands.", no_args_is_help=True
)
audit_app = typer.Typer(help="Check and sign the audit log.", no_args_is_help=True)
app.add_typer(proposals_app, name="proposals")
app.command("enrolment-code")(enrolment_code)
app.add_typer(audit_app, name="audit")


def _now() -> datetime:
    return datetime.now(UTC)


def _settings() -> Settings:
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _audit_key(settings: Settings) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(load_or_create_secret(settings.audit_key_file))


def _append(connection: Connection, settings: Settings, event: AuditEvent) -> None:
    append(
        connection,
        event,
        now=_now(),
        checkpointer=Checkpointer(_audit_key(settings), settings.checkpoint_every),
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8800, help="TCP port to listen on."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Run the key service under uvicorn (migrating the database first)."""
    import uvicorn

    settings = _settings()
    upgrade_to_head(make_engine(settings.database_url))
    uvicorn.run(
        "keyservice.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=True,
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
        code, expires_at = issue_code(connection, principal_id=principal_id, now=now)
        _append(
            connection,
            settings,
            AuditEvent(
                action="principal.bootstrap",
                outcome="allow",
                detail={"principal_id": principal_id, "new_principal": not admins},
            ),
        )
        connection.commit()
    typer.echo(f"principal_id: {principal_id}")
    typer.echo(f"enrolment code (single use, expires {expires_at:%Y-%m-%dT%H:%M:%SZ}): {code}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit chain; name the first broken entry and exit 1 if there is one."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        report = verify_chain(connection, _audit_key(settings).public_key())
        connection.rollback()
    if report.ok:
        typer.echo(f"audit chain intact: {report.entries} entries")
        return
    typer.echo(f"audit chain broken at entry {report.broken_seq}: {report.problem}", err=True)
    raise typer.Exit(code=1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's current head now."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        signed = write_checkpoint(connection, _audit_key(settings), now=_now())
        connection.commit()
    if signed is None:
        typer.echo("the audit log is empty; nothing to sign")
        return
    typer.echo(f"checkpoint: seq {signed[0]} hash {signed[1]}")


@app.command("rotate-root")
def rotate_root() -> None:
    """Add a root key version and rewrap every child key under it (blobs are untouched)."""
    settings = _settings()
    root = LocalFileRootKeyProvider(settings.root_key_file)
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    # The new version is saved first: until the rewrap commits, the old wraps still open
    # with the older versions the keyring keeps.
    version = root.rotate()
    with engine.connect() as connection:
        count = rewrap_child_keys(connection, root)
        _append(
            connection,
            settings,
            AuditEvent(
                action="root_key.rotate",
                outcome="allow",
                detail={"root_version": version, "child_keys": count},
            ),
        )
        connection.commit()
    typer.echo(f"root key version {version}; rewrapped {count} child key versions")


@app.command()
def sweep(
    older_than_hours: float | None = typer.Option(
        None, help="Age of abandoned uploads to remove (default: the service setting)."
    ),
) -> None:
    """Remove uploads that were never committed and blobs of deleted records."""
    from keyservice.app import build_state

    state = build_state(_settings())
    hours = state.settings.pending_upload_hours if older_than_hours is None else older_than_hours
    cutoff = _now() - timedelta(hours=hours)
    with state.engine.connect() as connection:
        stale = connection.execute(
            select(
                record_versions.c.record_id,
                record_versions.c.version,
                record_versions.c.object_name,
            ).where(record_versions.c.state == "pending", record_versions.c.created_at < cutoff)
        ).all()
        for row in stale:
            connection.execute(
                delete(wrapped_record_keys).where(
                    wrapped_record_keys.c.record_id == row.record_id,
                    wrapped_record_keys.c.version == row.version,
                )
            )
            connection.execute(
                delete(record_versions).where(
                    record_versions.c.record_id == row.record_id,
                    record_versions.c.version == row.version,
                )
            )
        deleted = (
            connection.execute(
                select(record_versions.c.object_name).where(record_versions.c.state == "deleted")
            )
            .scalars()
            .all()
        )
        _append(
            connection,
            state.settings,
            AuditEvent(
                action="uploads.sweep",
                outcome="allow",
                detail={"abandoned": len(stale)},
            ),
        )
        connection.commit()
    failed = 0
    for name in [row.object_name for row in stale] + list(deleted):
        try:
            state.blobs.delete(name)
        except (StorageError, OSError) as exc:
            # The key rows are already gone, so a blob left behind is unreadable; the next
            # sweep tries again. (An upload never started has no blob at all.)
            failed += 1
            typer.echo(f"could not delete blob {name}: {type(exc).__name__}", err=True)
    typer.echo(
        f"removed {len(stale)} abandoned uploads; re-checked {len(deleted)} deleted blobs"
        + (f"; {failed} blob deletions to retry" if failed else "")
    )


def main() -> None:
    app()
