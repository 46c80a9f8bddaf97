"""One-time enrolment codes (random, expiring, single use, stored only as their SHA-256),
and enrolling a device with one.

A code carries 120 random bits, so a plain hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from keyservice.catalog.invitations import expiry, invitation_refusal, may_invite
from keyservice.catalog.people import has_devices, has_read_rights
from keyservice.db.tables import devices, enrolment_codes, principals
from keyservice.ids import new_id

CODE_VALIDITY = timedelta(hours=24)
CODE_BYTES = 15


def normalise(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode("ascii", "replace")).hexdigest()


def issue_code(
    connection: Connection,
    *,
    principal_id: str,
    now: datetime,
    issued_by: str | None = None,
    issued_device: str | None = None,
    purpose: str = "first",
    share_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, datetime]:
    """Store the hash of a fresh code for ``principal_id``; return the code and its expiry.

    ``issued_by`` is whoever sees the code (None: the host); the device it enrols is vouched
    for by them. ``purpose``: first, approved (a first device that needed a second person),
    added (from one of the principal's own devices), recovered, or invited (with the share
    ``share_id``: keyservice/catalog/invitations.py). ``expires_at``: 24 hours by default.
    """
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii")
    code = "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))
    if expires_at is None:
        expires_at = now + CODE_VALIDITY
    connection.execute(
        insert(enrolment_codes).values(
            code_hash=code_hash(code),
            principal_id=principal_id,
            created_at=now,
            expires_at=expires_at,
            issued_by=issued_by,
            issued_device=issued_device,
            purpose=purpose,
            share_id=share_id,
        )
    )
    return code, expires_at


def invite(
    connection: Connection,
    *,
    principal_id: str,
    share_id: str,
    share_valid_to: datetime,
    issued_by: str,
    issued_device: str,
    now: datetime,
) -> tuple[str, datetime] | None:
    """An invitation for the recipient of a share just made by ``issued_by``: a code bound to
    the recipient and the share, expiring with it and within seven days; None when the
    recipient has (or had) a device, or could read something its issuer may not
    (keyservice/catalog/invitations.py)."""
    if not may_invite(connection, issuer_id=issued_by, recipient_id=principal_id, now=now):
        return None
    return issue_code(
        connection,
        principal_id=principal_id,
        now=now,
        issued_by=issued_by,
        issued_device=issued_device,
        purpose="invited",
        share_id=share_id,
        expires_at=expiry(share_valid_to, now=now),
    )


@dataclass(frozen=True)
class Enrolled:
    """A device enrolled with a code, and where it came from (devices.origin, vouched_by,
    approved_by; ``added_from``: the device that asked for an added device's code;
    ``share_id``: the share an invited device's code came with)."""

    principal_id: str
    device_id: str
    kind: str
    display_name: str
    roles: list[str]
    origin: str
    vouched_by: str | None
    approved_by: str | None
    added_from: str | None
    share_id: str | None = None


class EnrolmentRefused(Exception):
    """The code enrols nothing. ``reason`` is for the audit (unknown_code, used_code, …);
    ``code_principal`` the principal the code was for, if it exists; ``audited`` False for
    a code another request spent in the same instant (that request's entry says it all)."""

    def __init__(self, reason: str, *, code_principal: str | None, audited: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.code_principal = code_principal
        self.audited = audited


@dataclass(frozen=True)
class _Provenance:
    origin: str
    vouched_by: str | None
    approved_by: str | None


def enrol_device(
    db: Connection,
    *,
    code: str,
    device_name: str,
    signing_key: bytes,
    receiving_key: bytes,
    now: datetime,
) -> Enrolled:
    """Spend ``code`` and register the device's public keys for its principal; raises
    ``EnrolmentRefused`` (nothing written) if the code may not be used."""
    row = db.execute(
        select(
            enrolment_codes.c.code_hash,
            enrolment_codes.c.expires_at,
            enrolment_codes.c.used_at,
            enrolment_codes.c.issued_by,
            enrolment_codes.c.issued_device,
            enrolment_codes.c.purpose,
            enrolment_codes.c.share_id,
            principals.c.principal_id,
            principals.c.kind,
            principals.c.display_name,
            principals.c.roles,
            principals.c.revoked_at,
        )
        .join(principals, principals.c.principal_id == enrolment_codes.c.principal_id)
        .where(enrolment_codes.c.code_hash == code_hash(code))
    ).first()
    if row is None:
        raise EnrolmentRefused("unknown_code", code_principal=None)
    reason = None
    provenance: _Provenance | None = None
    if row.used_at is not None:
        reason = "used_code"
    elif row.expires_at <= now:
        reason = "expired_code"
    elif row.revoked_at is not None:
        reason = "revoked_principal"
    elif row.purpose == "invited":
        reason = invitation_refusal(
            db,
            share_id=row.share_id,
            issued_by=row.issued_by,
            principal_id=row.principal_id,
            now=now,
        )
        if reason is None:
            provenance = _Provenance("invited", row.issued_by, None)
    else:
        provenance = _provenance(db, row, now=now)
        if provenance is None:
            reason = "stale_code"
    if reason is not None or provenance is None:
        raise EnrolmentRefused(reason or "stale_code", code_principal=row.principal_id)
    # Mark the code used first and check that this transaction is the one that did it.
    marked = db.execute(
        update(enrolment_codes)
        .where(enrolment_codes.c.code_hash == row.code_hash, enrolment_codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    if marked.rowcount != 1:
        raise EnrolmentRefused("used_code", code_principal=row.principal_id, audited=False)
    device_id = new_id()
    db.execute(
        insert(devices).values(
            device_id=device_id,
            principal_id=row.principal_id,
            name=device_name,
            signing_key=signing_key,
            receiving_key=receiving_key,
            created_at=now,
            origin=provenance.origin,
            vouched_by=provenance.vouched_by,
            approved_by=provenance.approved_by,
        )
    )
    return Enrolled(
        principal_id=row.principal_id,
        device_id=device_id,
        kind=row.kind,
        display_name=row.display_name,
        roles=row.roles.split(),
        origin=provenance.origin,
        vouched_by=provenance.vouched_by,
        approved_by=provenance.approved_by,
        added_from=row.issued_device if provenance.origin == "added" else None,
        share_id=row.share_id if provenance.origin == "invited" else None,
    )


def _provenance(db: Connection, code: Any, *, now: datetime) -> _Provenance | None:
    """The provenance a code gives its device; None if the code may no longer be used: added
    from a device revoked since (a stolen device must not keep adding others), or a first
    code an admin issued alone to someone who has since got a device or read rights."""
    if code.purpose == "added":
        parent = db.execute(
            select(devices.c.vouched_by).where(
                devices.c.device_id == code.issued_device,
                devices.c.principal_id == code.principal_id,
                devices.c.revoked_at.is_(None),
            )
        ).first()
        if parent is None:
            return None
        return _Provenance("added", parent.vouched_by, None)
    # A first code an admin issued alone, because the person had no device and nothing to
    # read: if either changed since, it is stale, or it would open an account someone was
    # given rights for while the admin still held its code.
    stale = code.purpose == "first" and code.issued_by is not None
    if stale and (
        has_devices(db, code.principal_id) or has_read_rights(db, code.principal_id, now=now)
    ):
        return None
    approved = code.issued_by if code.purpose in ("approved", "recovered") else None
    origin = "recovered" if code.purpose == "recovered" else "first"
    return _Provenance(origin, code.issued_by, approved)
