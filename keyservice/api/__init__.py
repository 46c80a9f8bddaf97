"""The HTTP API (docs/API.md): one router per module, mounted by ``keyservice.app``."""

from keyservice.api import blobs, disclosures, principals, records, relationships, release

ROUTERS = (
    principals.router,
    relationships.router,
    records.router,
    release.router,
    disclosures.router,
    blobs.router,
)

__all__ = ["ROUTERS"]
