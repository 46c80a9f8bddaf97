"""Shortcuts for routes: audit a caller's action, or audit a refusal and raise it.

They take the running service as an ``AuditContext`` (its clock, audit MAC key, checkpoint
signing key and settings), so the audit package knows nothing of the service above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NoReturn, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from keyservice.audit.chain import AuditEvent, Checkpointer, append
from keyservice.audit.mac import AuditMac
from keyservice.caller import Caller
from keyservice.db.engine import restore_durability
from keyservice.errors import RefusedError
from keyservice.settings import Settings


class AuditContext(Protocol):
    """What appending an entry needs of the running service (keyservice.state.ServiceState)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def audit_mac(self) -> AuditMac: ...
    @property
    def audit_key(self) -> Ed25519PrivateKey: ...


def audit(
    db: Connection,
    state: AuditContext,
    caller: Caller | None,
    action: str,
    detail: Mapping[str, Any],
    *,
    outcome: str = "allow",
) -> int:
    """Append an entry for ``caller``'s action in the current transaction."""
    return append_event(
        db,
        state,
        AuditEvent(
            action=action,
            outcome=outcome,
            actor_principal=caller.principal_id if caller else None,
            actor_device=caller.device_id if caller else None,
            detail=detail,
        ),
    )


def append_event(db: Connection, state: AuditContext, event: AuditEvent) -> int:
    """Append ``event`` with the service's clock, audit MAC key and checkpoint policy."""
    return append(
        db, event, mac=state.audit_mac, now=state.clock(), checkpointer=checkpointer(state)
    )


def checkpointer(state: AuditContext) -> Checkpointer:
    """The service's checkpoint policy: sign the head every ``checkpoint_every`` entries."""
    return Checkpointer(state.audit_key, state.settings.checkpoint_every)


def refuse(
    db: Connection,
    state: AuditContext,
    caller: Caller,
    action: str,
    detail: Mapping[str, Any],
    *,
    status: int,
    message: str,
) -> NoReturn:
    """Roll back the request's work, audit the refusal on its own (durably, even inside
    ``relaxed_durability``), and raise ``RefusedError`` (answered ``status`` with
    ``message``, keyservice/problems.py)."""
    db.rollback()
    restore_durability(db)
    audit(db, state, caller, action, {**detail, "status": status}, outcome="deny")
    db.commit()
    raise RefusedError(message, status=status)
