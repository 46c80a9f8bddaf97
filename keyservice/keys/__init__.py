"""The key hierarchy: a versioned root key wraps per-child keys, which wrap per-record keys."""

from keyservice.keys.fake import FakeRootKeyProvider
from keyservice.keys.hierarchy import (
    unwrap_child_key,
    unwrap_record_key,
    wrap_child_key,
    wrap_record_key,
)
from keyservice.keys.local_file import LocalFileRootKeyProvider
from keyservice.keys.root import KEY_SIZE, RootKeyProvider, generate_key

__all__ = [
    "KEY_SIZE",
    "FakeRootKeyProvider",
    "LocalFileRootKeyProvider",
    "RootKeyProvider",
    "generate_key",
    "unwrap_child_key",
    "unwrap_record_key",
    "wrap_child_key",
    "wrap_record_key",
]
