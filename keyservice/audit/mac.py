"""The audit MAC key: what makes an entry's chain hash something only the service can compute.

The key is 32 random bytes in a file beside the service's other keys (``audit-mac.key`` in
the data directory, 0600, ``CAREVAULT_AUDIT_MAC_KEY_FILE``), never in the database. Two keys
are derived from it, so that no value computed for one purpose can stand in for the other:

    entry key = HMAC-SHA-256(file key, "carevault/audit-entry/v1")
    name key  = HMAC-SHA-256(file key, "carevault/audit-checkpoint-names/v1")

An entry's hash is HMAC-SHA-256 under the entry key (docs/AUDIT.md). The name key makes the
blob store names of checkpoints: a prefix shared by all of them, so that ``audit verify``
finds them with one listing, and a part per sequence number, so that instances checkpointing
the same entry write the same object. Both look like any other object name (random hex).
"""

from __future__ import annotations

import hmac

KEY_SIZE = 32
ENTRY_LABEL = b"carevault/audit-entry/v1"
NAMES_LABEL = b"carevault/audit-checkpoint-names/v1"
# Half of an object name each (vault.storage.names: 32 hex characters): 64 bits of prefix
# keep a record blob's random name from falling among the checkpoints.
_PART_BYTES = 8


class AuditMac:
    """Computes entries' MACs and checkpoints' object names; never shows the key."""

    __slots__ = ("_entry", "_names", "checkpoint_prefix")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"an audit MAC key is {KEY_SIZE} bytes")
        self._entry = hmac.digest(key, ENTRY_LABEL, "sha256")
        self._names = hmac.digest(key, NAMES_LABEL, "sha256")
        self.checkpoint_prefix = hmac.digest(self._names, b"prefix", "sha256")[:_PART_BYTES].hex()

    def entry(self, message: bytes) -> str:
        """The hex MAC of an entry's canonical encoding."""
        return hmac.digest(self._entry, message, "sha256").hex()

    def checkpoint_name(self, seq: int) -> str:
        """The blob store name of the checkpoint of entry ``seq``."""
        part = hmac.digest(self._names, b"seq\x00" + str(seq).encode("ascii"), "sha256")
        return self.checkpoint_prefix + part[:_PART_BYTES].hex()

    def __repr__(self) -> str:
        return "AuditMac(<key withheld>)"
