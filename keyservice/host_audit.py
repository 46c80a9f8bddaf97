"""What every host command shares: its settings (with a private data directory) and how it
appends to the audit chain under the service's keys (decision 0009)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from keyservice.audit.chain import AuditEvent, Checkpointer, append
from keyservice.audit.head import checked_head
from keyservice.audit.mac import AuditMac
from keyservice.errors import AuditChainError
from keyservice.keyfiles import load_or_create_secret
from keyservice.settings import Settings


def now() -> datetime:
    return datetime.now(UTC)


def host_settings() -> Settings:
    from keyservice.ops.startup import settings_or_refuse

    return settings_or_refuse()  # the data directory made private, or refused


def audit_key(settings: Settings) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(load_or_create_secret(settings.audit_key_file))


def audit_mac(settings: Settings) -> AuditMac:
    return AuditMac(load_or_create_secret(settings.audit_mac_key_file))


def append_at_host(connection: Connection, settings: Settings, event: AuditEvent) -> None:
    """Append ``event``; exit 1, changing nothing, if the chain's head does not verify."""
    mac = audit_mac(settings)
    try:
        # Never chain onto an entry this key cannot verify (decision 0009).
        checked_head(connection, mac)
    except AuditChainError as exc:
        typer.echo(f"nothing changed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    append(
        connection,
        event,
        mac=mac,
        now=now(),
        checkpointer=Checkpointer(audit_key(settings), settings.checkpoint_every),
    )
