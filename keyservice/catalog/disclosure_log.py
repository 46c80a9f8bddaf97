"""The disclosure log's rows: release entries of the audit chain for one child, with the
device each was sealed to, the recipient's organisation and the purpose of the share a row
was made through, and which of them a person may see."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, select

from keyservice.caller import Caller
from keyservice.catalog.facts import decide_row_reads
from keyservice.db.tables import (
    audit_entries,
    court_orders,
    devices,
    disclosures,
    principals,
    record_children,
    records,
    shares,
)


def entries_for(db: Connection, child_id: str) -> Sequence[Row[*tuple[Any, ...]]]:
    """Every disclosure about the child, oldest first, with the device and its origin, the
    recipient's organisation, and for a row made through a share its purpose and whether
    the child's guardians are told (``guardians_told``: False only for a share under a
    court order that says they must not be)."""
    return db.execute(
        select(
            disclosures,
            audit_entries.c.action,
            audit_entries.c.actor_device,
            devices.c.origin,
            principals.c.organisation,
            shares.c.purpose,
            court_orders.c.guardians_told,
        )
        .outerjoin(audit_entries, audit_entries.c.seq == disclosures.c.audit_seq)
        .outerjoin(devices, devices.c.device_id == audit_entries.c.actor_device)
        .outerjoin(principals, principals.c.principal_id == disclosures.c.principal_id)
        .outerjoin(shares, shares.c.share_id == disclosures.c.share_id)
        .outerjoin(
            court_orders,
            and_(
                shares.c.basis == "court_order",
                court_orders.c.court_order_id == shares.c.basis_id,
            ),
        )
        .where(disclosures.c.child_id == child_id)
        .order_by(disclosures.c.audit_seq, disclosures.c.record_id, disclosures.c.version)
    ).all()


def told_to_guardians(row: Row[*tuple[Any, ...]]) -> bool:
    """Whether the child's guardians see the row: all but those made through a share under a
    court order that says they are not to be told."""
    return row.guardians_told is not False


def readable_by(db: Connection, caller: Caller, record_ids: set[str], now: datetime) -> set[str]:
    """The records among ``record_ids`` the policy lets ``caller`` read now."""
    if not record_ids:
        return set()
    attributes = {
        row.record_id: row
        for row in db.execute(
            select(
                records.c.record_id, records.c.category, records.c.withheld_from_guardians
            ).where(records.c.record_id.in_(record_ids))
        )
    }
    children: dict[str, list[str]] = {}
    for record_id, child_id in db.execute(
        select(record_children.c.record_id, record_children.c.child_id)
        .where(record_children.c.record_id.in_(record_ids))
        .order_by(record_children.c.record_id, record_children.c.child_id)
    ):
        children.setdefault(record_id, []).append(child_id)
    decisions = decide_row_reads(db, caller, attributes.values(), children, now=now)
    return {record_id for record_id, decision in decisions.items() if decision.allowed}
