"""Shares to outside recipients (issue 14; docs/decisions/0013-shares.md): make one, list and
show them, revoke one, and load the live ones the release rules judge.

A share is judged at creation by the release rules themselves: the recipient, with the new
share added to their facts, must be allowed each listed record now, for every child of it.
So every reason the rules refuse a recipient (a consent naming someone else, withdrawn or
expired; an order that only restricts, has ended, or does not cover the category; a
safeguarding record under a consent; a photograph under a consent not naming photographs; a
group record one basis does not cover for each child) refuses the share, with the rules' own
reason, and nothing is written. The creator must also be allowed to read each record now.

A caller without standing, an unknown basis, an unknown record and a share of another
recipient all get the same ``DeniedError`` (404): nobody learns what exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, or_, select, update

from keyservice.caller import Caller
from keyservice.catalog import grants
from keyservice.catalog.access import may_read, stored_facts
from keyservice.catalog.changes import judge
from keyservice.catalog.facts import Relationships, load_relationships
from keyservice.catalog.share_receipts import check_ack_due
from keyservice.db.tables import (
    COMMITTED,
    consents,
    court_orders,
    disclosures,
    record_children,
    record_versions,
    records,
    share_items,
    shares,
)
from keyservice.errors import DeniedError, InvalidChangeError
from keyservice.ids import new_id
from keyservice.policy import (
    Action,
    Basis,
    Facts,
    PrincipalFacts,
    PrincipalKind,
    RecordFacts,
    Share,
    decide,
)
from keyservice.policy.writes import Change

DEFAULT_VALIDITY = timedelta(days=14)
MAX_RECORDS = 1000
NO_SUCH_BASIS = "no consent or court order with this id about a child for which you may share"
NO_SUCH_SHARE = "no such share, or not one you may see"


@dataclass(frozen=True)
class ShareItem:
    record_id: str
    version: int
    used: int
    # The committed ciphertext's size: the recipient's client sizes its first release by it.
    ciphertext_size: int | None = None


@dataclass(frozen=True)
class StoredShare:
    share_id: str
    recipient_id: str
    basis: str
    basis_id: str
    child_id: str
    purpose: str
    created_by: str
    created_at: datetime
    valid_from: datetime
    valid_to: datetime
    download_cap: int | None
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    items: tuple[ShareItem, ...]
    # Receipts (keyservice/catalog/share_receipts.py).
    ack_due: datetime | None = None
    opened_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_device: str | None = None


@dataclass(frozen=True)
class _Basis:
    kind: Basis
    child_id: str
    valid_to: datetime


def _basis(db: Connection, basis: str, basis_id: str) -> _Basis | None:
    if basis == Basis.CONSENT.value:
        row = db.execute(
            select(consents.c.child_id, consents.c.valid_to).where(
                consents.c.consent_id == basis_id
            )
        ).first()
        return None if row is None else _Basis(Basis.CONSENT, row.child_id, row.valid_to)
    if basis == Basis.COURT_ORDER.value:
        row = db.execute(
            select(court_orders.c.child_id, court_orders.c.valid_to).where(
                court_orders.c.court_order_id == basis_id
            )
        ).first()
        return None if row is None else _Basis(Basis.COURT_ORDER, row.child_id, row.valid_to)
    raise InvalidChangeError("basis must be consent or court_order")


def _chosen(
    db: Connection, child_id: str, record_ids: Sequence[str], categories: Sequence[str]
) -> list[str]:
    """The record ids listed, or the basis child's live records of the categories named."""
    if bool(record_ids) == bool(categories):
        raise InvalidChangeError("list either record_ids or categories, not both")
    if record_ids:
        return list(dict.fromkeys(record_ids))
    found = db.execute(
        select(records.c.record_id)
        .join(record_children, record_children.c.record_id == records.c.record_id)
        .where(
            record_children.c.child_id == child_id,
            records.c.category.in_(categories),
            records.c.deleted_at.is_(None),
        )
        .order_by(records.c.record_id)
    ).scalars()
    return list(found)


def _latest_versions(db: Connection, record_ids: Iterable[str]) -> dict[str, int]:
    return {
        row.record_id: row.version
        for row in db.execute(
            select(
                record_versions.c.record_id, func.max(record_versions.c.version).label("version")
            )
            .where(
                record_versions.c.record_id.in_(list(record_ids)),
                record_versions.c.state == COMMITTED,
            )
            .group_by(record_versions.c.record_id)
        )
    }


def create_share(
    db: Connection,
    caller: Caller,
    *,
    recipient_id: str,
    basis: str,
    basis_id: str,
    purpose: str,
    record_ids: Sequence[str] = (),
    categories: Sequence[str] = (),
    valid_to: datetime | None = None,
    download_cap: int | None = None,
    ack_due: datetime | None = None,
    now: datetime,
) -> StoredShare:
    """Make a share now, or refuse it changing nothing (``DeniedError``: no standing or an
    unknown basis or record, 404; ``InvalidChangeError``: the share is not valid as asked)."""
    found = _basis(db, basis, basis_id)
    denial = DeniedError(
        NO_SUCH_BASIS,
        action=Change.SHARE_CREATE.value,
        detail={"basis": basis, "basis_id": basis_id, "reason": "no_standing"},
    )
    if found is None:
        raise denial
    if not judge(db, caller, Change.SHARE_CREATE, child_id=found.child_id, now=now).allowed:
        raise denial
    if not purpose.strip():
        raise InvalidChangeError("a share needs a purpose")
    if download_cap is not None and download_cap < 1:
        raise InvalidChangeError("download_cap must be at least 1")
    if grants.kind_of(db, recipient_id) != PrincipalKind.EXTERNAL.value:
        raise InvalidChangeError("recipient_id is not an active outside recipient")
    if valid_to is None:
        valid_to = min(now + DEFAULT_VALIDITY, found.valid_to)
    elif valid_to.utcoffset() is None:
        raise InvalidChangeError("times must carry a UTC offset")
    elif valid_to > found.valid_to:
        raise InvalidChangeError("a share cannot outlive its basis: valid_to is past its end")
    if valid_to <= now:
        raise InvalidChangeError("valid_to must be in the future, and the basis still valid")
    check_ack_due(ack_due, valid_to=valid_to, now=now)
    chosen = _chosen(db, found.child_id, record_ids, categories)
    if not chosen:
        raise InvalidChangeError("no records to share")
    if len(chosen) > MAX_RECORDS:
        raise InvalidChangeError(f"a share lists at most {MAX_RECORDS} records")
    versions = _latest_versions(db, chosen)
    share_id = new_id()
    facts: list[RecordFacts] = []
    for record_id in chosen:
        record = stored_facts(db, record_id)
        if record is None or record_id not in versions or not may_read(db, caller, record, now=now):
            raise DeniedError(
                "no such record, or not one you may share",
                action=Change.SHARE_CREATE.value,
                detail={"record_id": record_id, "reason": "unreadable_record"},
            )
        facts.append(record)
    proposed = Share(
        share_id=share_id,
        recipient_id=recipient_id,
        basis=found.kind,
        basis_id=basis_id,
        record_ids=frozenset(chosen),
        valid_from=now,
        valid_to=valid_to,
        revoked_at=None,
    )
    for record in facts:
        _judge_for_recipient(db, proposed, record, now=now)
    db.execute(
        shares.insert().values(
            share_id=share_id,
            recipient_id=recipient_id,
            basis=found.kind.value,
            basis_id=basis_id,
            purpose=purpose,
            created_by=caller.principal_id,
            created_device=caller.device_id,
            created_at=now,
            valid_from=now,
            valid_to=valid_to,
            download_cap=download_cap,
            ack_due=ack_due,
        )
    )
    db.execute(
        share_items.insert(),
        [
            {"share_id": share_id, "record_id": rid, "version": versions[rid], "used": 0}
            for rid in chosen
        ],
    )
    shown = _load(db, share_id)
    assert shown is not None
    return shown


def _judge_for_recipient(
    db: Connection, share: Share, record: RecordFacts, *, now: datetime
) -> None:
    """The release rules' verdict on the recipient reading ``record`` through ``share``."""
    # With the recipient's other shares of the record: a group record is covered when each
    # of its children is, through this share or a live one about another child. Never a
    # share about this share's own child: its child is judged on this share's basis alone
    # (a consent naming photographs only does not share an incident report because an order
    # already does; tests/model/test_found.py).
    relationships = load_relationships(
        db,
        principal_id=share.recipient_id,
        kind="external",
        child_ids=record.child_ids,
        record_ids=(record.record_id,),
        now=now,
    )
    decision = decide(
        Facts(
            principal=PrincipalFacts(
                principal_id=share.recipient_id,
                kind=PrincipalKind.EXTERNAL,
                roles=frozenset(),
                active=True,
                device_active=True,
            ),
            action=Action.READ,
            record=record,
            now=now,
            guardianships=relationships.guardianships,
            consents=relationships.consents,
            court_orders=relationships.court_orders,
            shares=(*_about_other_children(relationships, share), share),
        )
    )
    if not decision.allowed:
        raise InvalidChangeError(f"the basis does not cover this share: {decision.reason}")


def _about_other_children(relationships: Relationships, share: Share) -> tuple[Share, ...]:
    """The recipient's other shares whose basis is about another child than ``share``'s."""
    child_of = {c.consent_id: c.child_id for c in relationships.consents}
    child_of.update({o.court_order_id: o.child_id for o in relationships.court_orders})
    own = child_of.get(share.basis_id)
    return tuple(s for s in relationships.shares if child_of.get(s.basis_id, own) != own)


def _load(db: Connection, share_id: str) -> StoredShare | None:
    row = db.execute(select(shares).where(shares.c.share_id == share_id)).first()
    if row is None:
        return None
    found = _basis(db, row.basis, row.basis_id)
    items = tuple(
        ShareItem(item.record_id, item.version, item.used, item.ciphertext_size)
        for item in db.execute(
            select(share_items, record_versions.c.ciphertext_size)
            .outerjoin(
                record_versions,
                (record_versions.c.record_id == share_items.c.record_id)
                & (record_versions.c.version == share_items.c.version),
            )
            .where(share_items.c.share_id == share_id)
            .order_by(share_items.c.record_id, share_items.c.version)
        )
    )
    return StoredShare(
        share_id=row.share_id,
        recipient_id=row.recipient_id,
        basis=row.basis,
        basis_id=row.basis_id,
        child_id=found.child_id if found else "",
        purpose=row.purpose,
        created_by=row.created_by,
        created_at=row.created_at,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        download_cap=row.download_cap,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revoke_reason=row.revoke_reason,
        items=items,
        ack_due=row.ack_due,
        opened_at=row.opened_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_device=row.acknowledged_device,
    )


def show_share(db: Connection, caller: Caller, share_id: str) -> StoredShare:
    """A share its creator or its recipient may see; anyone else: the 404 of an unknown id."""
    found = _load(db, share_id)
    if found is None or caller.principal_id not in (found.created_by, found.recipient_id):
        raise DeniedError(
            NO_SUCH_SHARE, action="share.read", detail={"share_id": share_id, "reason": "unknown"}
        )
    return found


def open_share(db: Connection, caller: Caller, share_id: str) -> StoredShare:
    """A share as its recipient opens it to download (``POST /v1/shares/{id}/open``); anyone
    else, its creator included: the same 404 and audit entry as an unknown id (only the
    recipient releases through a share)."""
    found = _load(db, share_id)
    if found is None or caller.principal_id != found.recipient_id:
        raise DeniedError(
            NO_SUCH_SHARE, action="share.read", detail={"share_id": share_id, "reason": "unknown"}
        )
    return found


def first_release(
    found: StoredShare, *, held: Iterable[tuple[str, int]], budget: int, limit: int
) -> list[tuple[str, int]]:
    """The items an opening releases: in the share's order, those not ``held`` (already
    received by the recipient's device), as many as fit ``budget`` bytes of ciphertext and
    at most ``limit`` — one at least, and only the first when the sizes are not known."""
    kept = set(held)
    chosen: list[tuple[str, int]] = []
    total = 0
    for item in found.items:
        pair = (item.record_id, item.version)
        if pair in kept:
            continue
        if chosen and (item.ciphertext_size is None or len(chosen) >= limit):
            break
        total += item.ciphertext_size or 0
        if chosen and total > budget:
            break
        chosen.append(pair)
        if item.ciphertext_size is None:
            break
    return chosen


def list_shares(db: Connection, caller: Caller) -> list[StoredShare]:
    """Shares the caller made or that were made for them, newest first."""
    ids = db.execute(
        select(shares.c.share_id)
        .where(
            or_(
                shares.c.created_by == caller.principal_id,
                shares.c.recipient_id == caller.principal_id,
            )
        )
        .order_by(shares.c.created_at.desc(), shares.c.share_id)
    ).scalars()
    return [s for s in (_load(db, share_id) for share_id in list(ids)) if s is not None]


def revoke_share(
    db: Connection, caller: Caller, share_id: str, *, reason: str, now: datetime
) -> StoredShare:
    """Revoke now, with a reason: the next release through it is refused."""
    found = _load(db, share_id)
    denial = DeniedError(
        NO_SUCH_SHARE,
        action=Change.SHARE_REVOKE.value,
        detail={"share_id": share_id, "reason": "no_standing"},
    )
    if found is None:
        raise denial
    if not judge(db, caller, Change.SHARE_REVOKE, child_id=found.child_id, now=now).allowed:
        raise denial
    if not reason.strip():
        raise InvalidChangeError("revoking a share needs a reason")
    if found.revoked_at is not None:
        raise InvalidChangeError("the share is already revoked")
    db.execute(
        update(shares)
        .where(shares.c.share_id == share_id, shares.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=caller.principal_id, revoke_reason=reason)
    )
    revoked = _load(db, share_id)
    assert revoked is not None
    return revoked


def log_disclosure(db: Connection, share: StoredShare, *, audit_seq: int) -> None:
    """The share's entry in the disclosure log of each child of each record it lists, in the
    transaction of the share's audit entry ``audit_seq``."""
    listed = {item.record_id: item.version for item in share.items}
    rows = db.execute(
        select(record_children.c.record_id, record_children.c.child_id).where(
            record_children.c.record_id.in_(list(listed))
        )
    ).all()
    db.execute(
        disclosures.insert(),
        [
            {
                "audit_seq": audit_seq,
                "child_id": row.child_id,
                "record_id": row.record_id,
                "version": listed[row.record_id],
                "principal_id": share.recipient_id,
                "basis": share.basis,
                "at": share.created_at,
                "share_id": share.share_id,
            }
            for row in rows
        ],
    )
