"""What one running service holds between requests: settings, engine and key material handles."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from keyservice.audit.group import AuditWrite, BatchContext, GroupCommit
from keyservice.audit.mac import AuditMac
from keyservice.audit.record import checkpointer
from keyservice.auth.nonces import ReplayCache
from keyservice.auth.rejections import RejectionLedger
from keyservice.auth.revocation import active_devices
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
    # Told of every audit write this process committed and how long it waited (metrics).
    on_audited: Callable[[AuditWrite, float], None] | None = None

    def __repr__(self) -> str:
        return f"ServiceState(database={self.engine.url.render_as_string(hide_password=True)})"

    async def audit_committed(self, write: AuditWrite) -> int:
        """Commit ``write`` (an entry, its index rows, maybe its nonce) before returning its seq.

        For requests whose only writes are those: the entry joins the service's group commit
        (keyservice/audit/group.py) and the coroutine waits without holding a thread or a
        connection (a batch's leader checks one out in its worker thread). Raises
        ``AuditUnavailableError`` if the batch failed, and ``AuthenticationError`` if the
        write's nonce had been spent before or its device was revoked meanwhile.
        """
        if self.on_audited is None:
            return await self.audit_group.commit_async(self.engine, write, self.batch_context())
        started = time.perf_counter()
        seq = await self.audit_group.commit_async(self.engine, write, self.batch_context())
        self.on_audited(write, time.perf_counter() - started)
        return seq

    def batch_context(self) -> BatchContext:
        """The clock, audit MAC key, checkpoint policy, replay cache and revocation check, for
        a group commit's leader."""
        return BatchContext(
            clock=self.clock,
            mac=self.audit_mac,
            checkpointer=checkpointer(self),
            replay_cache=self.replay_cache,
            active_devices=active_devices,
        )
