"""The HTTP API (docs/API.md): one router per module, mounted by ``keyservice.app``."""

from keyservice.api import (
    approvals,
    blobs,
    children,
    disclosures,
    enrolment,
    principals,
    records,
    relationships,
    release,
    retention,
    rooms,
    rotation,
    shares,
)

ROUTERS = (
    enrolment.router,
    principals.router,
    approvals.router,
    children.router,
    relationships.router,
    records.router,
    release.router,
    disclosures.router,
    shares.router,
    rotation.router,
    rooms.router,
    blobs.router,
    retention.router,
)

__all__ = ["ROUTERS"]
