"""The hash-chained, fail-closed audit log (docs/AUDIT.md)."""

from keyservice.audit.chain import AuditEvent, Checkpointer, append, entry_hash
from keyservice.audit.checkpoints import write_checkpoint
from keyservice.audit.verify import ChainReport, verify_chain

__all__ = [
    "AuditEvent",
    "ChainReport",
    "Checkpointer",
    "append",
    "entry_hash",
    "verify_chain",
    "write_checkpoint",
]
