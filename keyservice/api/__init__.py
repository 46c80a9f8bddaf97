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
    rooms,
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
    rooms.router,
    blobs.router,
)

__all__ = ["ROUTERS"]
