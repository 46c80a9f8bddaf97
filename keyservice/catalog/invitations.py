"""Invitations (issue 14; docs/decisions/0014-invitations.md): the one-time enrolment code a
share to an outside recipient with no device comes with, and when such a code may enrol.

The share's creator sees the code, so whoever holds the device it enrols might be the
creator. A code is therefore issued, and later enrols, only while everything the recipient
could read (the records their live shares list) is something its issuer may read themselves
now, and only while the recipient has never had a device: one invitation enrols one device,
and a recipient who already has rights elsewhere gets a code the usual way (an admin's,
approved by a second person). The code gives no access by itself: the share and its basis
are judged on every release. Nor does it enrol once the share's basis no longer holds: a
consent withdrawn or past its end, a court order ended or past its end (as for the share's
own expiry or revocation).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select

from keyservice.catalog.access import stored_facts
from keyservice.catalog.facts import load_relationships
from keyservice.catalog.people import has_devices
from keyservice.db.tables import consents, court_orders, principals, share_items, shares
from keyservice.policy import Action, Facts, PrincipalFacts, PrincipalKind, decide

# An invitation expires with its share, and at most this long after it was issued.
MAX_VALIDITY = timedelta(days=7)


def may_invite(db: Connection, *, issuer_id: str, recipient_id: str, now: datetime) -> bool:
    """Whether ``issuer_id`` may hold a code for ``recipient_id`` now: the recipient never had
    a device, and the issuer may read every record the recipient's live shares list."""
    if has_devices(db, recipient_id):
        return False
    issuer = db.execute(
        select(principals.c.kind, principals.c.roles).where(
            principals.c.principal_id == issuer_id, principals.c.revoked_at.is_(None)
        )
    ).first()
    if issuer is None:
        return False
    listed = db.execute(
        select(share_items.c.record_id)
        .join(shares, shares.c.share_id == share_items.c.share_id)
        .where(
            shares.c.recipient_id == recipient_id,
            or_(shares.c.revoked_at.is_(None), shares.c.revoked_at > now),
            shares.c.valid_from <= now,
            shares.c.valid_to > now,
        )
        .distinct()
    ).scalars()
    who = PrincipalFacts(
        principal_id=issuer_id,
        kind=PrincipalKind(issuer.kind),
        roles=frozenset(issuer.roles.split()),
        active=True,
        device_active=True,
    )
    for record_id in list(listed):
        record = stored_facts(db, record_id)
        if record is None:
            continue  # deleted: nobody reads it
        relationships = load_relationships(
            db,
            principal_id=issuer_id,
            kind=issuer.kind,
            child_ids=record.child_ids,
            record_ids=(record_id,),
            now=now,
        )
        decision = decide(
            Facts(
                principal=who,
                action=Action.READ,
                record=record,
                now=now,
                assignments=relationships.assignments,
                guardianships=relationships.guardianships,
                consents=relationships.consents,
                court_orders=relationships.court_orders,
                shares=relationships.shares,
            )
        )
        if not decision.allowed:
            return False
    return True


def expiry(share_valid_to: datetime, *, now: datetime) -> datetime:
    """When an invitation issued now for a share ending at ``share_valid_to`` expires."""
    return min(share_valid_to, now + MAX_VALIDITY)


def invitation_refusal(
    db: Connection,
    *,
    share_id: str | None,
    issued_by: str | None,
    principal_id: str,
    now: datetime,
) -> str | None:
    """Why an unused, unexpired invitation code may not enrol now (for the audit), or None.

    Locks the recipient's row first (PostgreSQL; SQLite writers queue anyway), so two
    invitations for one recipient spent at the same instant enrol one device, not two.
    """
    db.execute(
        select(principals.c.principal_id)
        .where(principals.c.principal_id == principal_id)
        .with_for_update()
    )
    share = db.execute(
        select(
            shares.c.recipient_id,
            shares.c.revoked_at,
            shares.c.valid_from,
            shares.c.valid_to,
            shares.c.basis,
            shares.c.basis_id,
        ).where(shares.c.share_id == share_id)
    ).first()
    if share is None or issued_by is None or share.recipient_id != principal_id:
        return "stale_code"
    if share.revoked_at is not None and share.revoked_at <= now:
        return "share_revoked"
    if not share.valid_from <= now < share.valid_to:
        return "share_expired"
    basis = _basis_refusal(db, share.basis, share.basis_id, now=now)
    if basis is not None:
        return basis
    if not may_invite(db, issuer_id=issued_by, recipient_id=principal_id, now=now):
        return "stale_code"
    return None


def _basis_refusal(db: Connection, basis: str, basis_id: str, *, now: datetime) -> str | None:
    """Why a share's consent or court order no longer holds at ``now`` (for the audit)."""
    if basis == "consent":
        found = db.execute(
            select(
                consents.c.valid_from, consents.c.valid_to, consents.c.withdrawn_at.label("ended")
            ).where(consents.c.consent_id == basis_id)
        ).first()
        withdrawn = "basis_withdrawn"
    else:
        found = db.execute(
            select(
                court_orders.c.valid_from,
                court_orders.c.valid_to,
                court_orders.c.ended_at.label("ended"),
            ).where(court_orders.c.court_order_id == basis_id)
        ).first()
        withdrawn = "basis_ended"
    if found is None:
        return "stale_code"
    if found.ended is not None and found.ended <= now:
        return withdrawn
    if not found.valid_from <= now < found.valid_to:
        return "basis_ended"
    return None
