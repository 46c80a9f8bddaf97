"""Shortcuts for routes: audit a caller's action, or audit a refusal and raise it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from fastapi import HTTPException
from sqlalchemy import Connection

from keyservice.audit.chain import AuditEvent, Checkpointer, append
from keyservice.audit.group import AuditWrite, BatchContext
from keyservice.auth.revocation import active_devices
from keyservice.caller import Caller
from keyservice.db.engine import restore_durability
from keyservice.state import ServiceState


def audit(
    db: Connection,
    state: ServiceState,
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


def append_event(db: Connection, state: ServiceState, event: AuditEvent) -> int:
    """Append ``event`` with the service's clock, audit MAC key and checkpoint policy."""
    return append(
        db,
        event,
        mac=state.audit_mac,
        now=state.clock(),
        checkpointer=Checkpointer(state.audit_key, state.settings.checkpoint_every),
    )


async def audit_committed(state: ServiceState, write: AuditWrite) -> int:
    """Commit ``write`` (an entry, its index rows, maybe its nonce) before returning its seq.

    For requests whose only writes are those: the entry joins the service's group commit
    (keyservice/audit/group.py) and the coroutine waits without holding a thread or a
    connection (a batch's leader checks one out in its worker thread). Raises
    ``AuditUnavailableError`` if the batch failed, and ``AuthenticationError`` if the write's
    nonce had been spent before.
    """
    return await state.audit_group.commit_async(state.engine, write, batch_context(state))


def batch_context(state: ServiceState) -> BatchContext:
    """The service's clock, audit MAC key, checkpoint policy, replay cache and revocation check,
    for a group commit's leader."""
    return BatchContext(
        clock=state.clock,
        mac=state.audit_mac,
        checkpointer=Checkpointer(state.audit_key, state.settings.checkpoint_every),
        replay_cache=state.replay_cache,
        active_devices=active_devices,
    )


def refuse(
    db: Connection,
    state: ServiceState,
    caller: Caller,
    action: str,
    detail: Mapping[str, Any],
    *,
    status: int,
    message: str,
) -> NoReturn:
    """Roll back the request's work, audit the refusal on its own (durably, even inside
    ``relaxed_durability``), and raise ``status``."""
    db.rollback()
    restore_durability(db)
    audit(db, state, caller, action, {**detail, "status": status}, outcome="deny")
    db.commit()
    raise HTTPException(status_code=status, detail=message)
