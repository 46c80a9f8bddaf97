"""What one running service holds between requests: settings, engine and key material handles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from keyservice.audit.group import GroupCommit
from keyservice.audit.mac import AuditMac
from keyservice.auth.nonces import ReplayCache
from keyservice.auth.rejections import RejectionLedger
from keyservice.catalog.child_keys import ChildKeyCache
from keyservice.keys import RootKeyProvider
from keyservice.settings import Settings
from vault.storage import BlobStore, TokenSigner


@dataclass
class ServiceState:
    settings: Settings
    engine: Engine
    root: RootKeyProvider
    blobs: BlobStore
    audit_key: Ed25519PrivateKey
    audit_mac: AuditMac
    # Where timed checkpoints are kept outside the database (the blob store unless set).
    checkpoints: BlobStore
    child_keys: ChildKeyCache
    replay_cache: ReplayCache
    clock: Callable[[], datetime]
    # Verifies blob URL tokens before a body is read; only with the local-directory store.
    blob_tokens: TokenSigner | None = None
    # Key releases' audit entries are committed in groups (docs/decisions/0005).
    audit_group: GroupCommit = field(default_factory=GroupCommit)
    # Rejected requests by source: rate limit and coalesced audit (docs/decisions/0011).
    rejections: RejectionLedger = field(default_factory=RejectionLedger)

    def __repr__(self) -> str:
        return f"ServiceState(database={self.engine.url.render_as_string(hide_password=True)})"
