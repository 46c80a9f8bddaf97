"""One-time enrolment codes: random, expiring, single use, stored only as their SHA-256.

A code carries 120 random bits, so a plain hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert

from keyservice.db.tables import enrolment_codes

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
) -> tuple[str, datetime]:
    """Store the hash of a fresh code for ``principal_id``; return the code and its expiry.

    ``issued_by`` is whoever sees the code (None: the host); the device it enrols is vouched
    for by them. ``purpose``: first, approved (a first device that needed a second person),
    added (from one of the principal's own devices) or recovered.
    """
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii")
    code = "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))
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
        )
    )
    return code, expires_at
