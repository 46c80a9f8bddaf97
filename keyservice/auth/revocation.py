"""Which devices may still act: read inside a transaction that is about to release keys.

A release is authenticated in a read before its audit batch commits (decision 0007); a device
or principal revoked in between must not get the keys, so the batch asks again in its own
transaction, after the chain-head lock.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, bindparam, select

from keyservice.db.tables import devices, principals

# Built once: constructing a statement and its cache key cost more than running it.
_ACTIVE = (
    select(devices.c.device_id)
    .join(principals, principals.c.principal_id == devices.c.principal_id)
    .where(
        devices.c.device_id.in_(bindparam("device_ids", expanding=True)),
        devices.c.revoked_at.is_(None),
        principals.c.revoked_at.is_(None),
    )
)


def active_devices(connection: Connection, device_ids: Collection[str]) -> set[str]:
    """The devices among ``device_ids`` that exist and whose device and principal are not
    revoked, as the current transaction sees them."""
    if not device_ids:
        return set()
    return {row.device_id for row in connection.execute(_ACTIVE, {"device_ids": list(device_ids)})}
