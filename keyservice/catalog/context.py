"""What the catalog's record work needs of the running service: the audit's context, the
blob store and the child key cache. ``keyservice.state.ServiceState`` provides it; the
catalog never imports the service state (tests/keyservice/test_layers.py)."""

from __future__ import annotations

from typing import Protocol

from keyservice.audit.record import AuditContext
from keyservice.catalog.child_keys import ChildKeyCache
from vault.storage import BlobStore


class RecordContext(AuditContext, Protocol):
    @property
    def blobs(self) -> BlobStore: ...
    @property
    def child_keys(self) -> ChildKeyCache: ...
