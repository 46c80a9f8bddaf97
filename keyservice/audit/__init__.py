"""The hash-chained, fail-closed audit log (docs/AUDIT.md)."""

from keyservice.audit.chain import AuditEvent, Checkpointer, append, entry_hash
from keyservice.audit.checkpoints import Checkpoint
from keyservice.audit.head import checkpoint_head
from keyservice.audit.mac import AuditMac
from keyservice.audit.verify import ChainReport, verify_chain

__all__ = [
    "AuditEvent",
    "AuditMac",
    "ChainReport",
    "Checkpoint",
    "Checkpointer",
    "append",
    "checkpoint_head",
    "entry_hash",
    "verify_chain",
]
