"""Refusing a request as unauthenticated: where each refusal is decided, and how it is audited.

A signed request is refused with ``AuthenticationError`` and a ``Refusal`` reason
(keyservice/errors.py; the table in docs/SIGNING.md) when

- its signature does not verify: ``verify_request`` (keyservice/auth/verifier.py);
- its device is unknown or revoked, or its principal is revoked: ``DeviceLookup``, here;
- its nonce was spent before: ``refuse_spent_nonce``, here, for a key release before its
  work; ``ReplayCache.remember`` for every other route, which spends its nonce first;
- it is a key release whose nonce a racing copy spent, or whose device or principal was
  revoked, before its audit batch commits: the batch (keyservice/audit/group.py) finds it
  and appends the entry ``nonce_claim`` prepared here.

Every other refusal is audited by ``record_refusal``: an ``auth.reject`` entry in a
transaction of its own, unless its source is past its one-by-one entries for the reason
(then it is only counted, decision 0011). Nothing here knows HTTP: the API answers every
``AuthenticationError`` with the one generic 401 (keyservice/problems.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from keyservice.audit.chain import AuditEvent
from keyservice.audit.group import NonceClaim
from keyservice.audit.record import AuditContext, append_event
from keyservice.auth.nonces import ReplayCache
from keyservice.auth.rejections import RejectionLedger
from keyservice.caller import Caller
from keyservice.db.tables import devices, principals
from keyservice.errors import AuthenticationError, Refusal
from keyservice.ids import is_id


class RefusalContext(AuditContext, Protocol):
    """What auditing a refusal needs of the running service (keyservice.state.ServiceState)."""

    @property
    def rejections(self) -> RejectionLedger: ...


def rejection(
    reason: Refusal,
    *,
    method: str,
    source: str,
    principal_id: str | None = None,
    device_id: str | None = None,
    claimed_device: str | None = None,
) -> AuditEvent:
    """The ``auth.reject`` entry of a refused request: the reason is audited, never told.

    The actor is a device whose signature verified (a replay, say); a key id that did not
    verify is anyone's to write, so it is only recorded as ``claimed_device``.
    """
    detail = {"reason": reason, "method": method, "source": source}
    if claimed_device is not None:
        detail["claimed_device"] = claimed_device
    return AuditEvent(
        action="auth.reject",
        outcome="deny",
        actor_principal=principal_id,
        actor_device=device_id,
        detail=detail,
    )


def record_refusal(db: Connection, state: RefusalContext, event: AuditEvent) -> None:
    """Roll back the request's work, count its refusal, and append ``event`` in a transaction
    of its own unless its source is past its one-by-one entries for the reason."""
    db.rollback()
    admitted = state.rejections.admit(event)
    if admitted is not None:
        append_event(db, state, admitted)
        db.commit()


def nonce_claim(caller: Caller, *, method: str, source: str) -> NonceClaim:
    """A key release's nonce, to be spent in its audit batch, with the entry that takes the
    release's place if the batch refuses it (the batch names the reason)."""
    return NonceClaim(
        caller.device_id,
        caller.nonce,
        rejected=rejection(
            Refusal.REPLAYED_NONCE,
            method=method,
            source=source,
            principal_id=caller.principal_id,
            device_id=caller.device_id,
        ),
    )


def refuse_spent_nonce(
    db: Connection, replay_cache: ReplayCache, *, device_id: str, nonce: str
) -> None:
    """Refuse a request whose nonce was spent before, without spending it (one indexed read):
    for a key release, which spends its nonce in its audit batch, before its work."""
    if replay_cache.seen(db, device_id=device_id, nonce=nonce):
        raise AuthenticationError(Refusal.REPLAYED_NONCE)


# Built once: constructing a statement and its cache key cost more than running it.
_DEVICE = (
    select(
        devices.c.principal_id,
        devices.c.signing_key,
        devices.c.receiving_key,
        devices.c.revoked_at.label("device_revoked_at"),
        principals.c.kind,
        principals.c.roles,
        principals.c.display_name,
        principals.c.organisation,
        principals.c.revoked_at,
    )
    .join(principals, principals.c.principal_id == devices.c.principal_id)
    .where(devices.c.device_id == bindparam("device_id"))
)


@dataclass
class DeviceLookup:
    """Resolves a signature's key id to an active device, refusing unknown and revoked ones,
    and keeps what it learnt for the refusal's entry. Until the signature has verified
    (``verified``), the key id is only what the request claims."""

    db: Connection
    key_id: str | None = None
    principal_id: str | None = None
    row: Row[*tuple[Any, ...]] | None = None
    db_error: SQLAlchemyError | None = None
    verified: bool = False

    def resolve(self, key_id: str) -> Ed25519PublicKey:
        """The device's signing key, for the verifier; the device and its principal, their
        revocations included, in one query."""
        if not is_id(key_id):
            raise AuthenticationError(Refusal.UNKNOWN_DEVICE)
        self.key_id = key_id
        try:
            row = self.db.execute(_DEVICE, {"device_id": key_id}).first()
        except SQLAlchemyError as exc:
            self.db_error = exc
            raise AuthenticationError(Refusal.DATABASE_UNAVAILABLE) from exc
        if row is None:
            raise AuthenticationError(Refusal.UNKNOWN_DEVICE)
        self.principal_id = row.principal_id
        if row.device_revoked_at is not None:
            raise AuthenticationError(Refusal.REVOKED_DEVICE)
        if row.revoked_at is not None:
            raise AuthenticationError(Refusal.REVOKED_PRINCIPAL)
        self.row = row
        return Ed25519PublicKey.from_public_bytes(row.signing_key)

    def rejection(self, reason: Refusal, *, method: str, source: str) -> AuditEvent:
        """The entry of this request's refusal: a verified device is its actor, a key id
        that did not verify only ``claimed_device``."""
        if self.verified:
            return rejection(
                reason,
                method=method,
                source=source,
                principal_id=self.principal_id,
                device_id=self.key_id,
            )
        return rejection(reason, method=method, source=source, claimed_device=self.key_id)

    def caller(self, *, device_id: str, nonce: str) -> Caller:
        """The caller of a request whose signature verified with the resolved device's key."""
        row = self.row
        assert row is not None and self.verified
        return Caller(
            principal_id=row.principal_id,
            device_id=device_id,
            kind=row.kind,
            roles=frozenset(row.roles.split()),
            display_name=row.display_name,
            organisation=row.organisation,
            receiving_key=row.receiving_key,
            nonce=nonce,
        )
