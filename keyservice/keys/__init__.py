"""The key hierarchy: a versioned root key wraps per-child keys, which wrap per-record keys."""

from keyservice.keys.fake import FakeRootKeyProvider
from keyservice.keys.hierarchy import (
    RecordKeyRewrapper,
    generate_child_key,
    move_child_key,
    rewrap_child_key,
    unwrap_child_key,
    unwrap_record_key,
    wrap_child_key,
    wrap_record_key,
)
from keyservice.keys.hsm import Pkcs11RootKeyProvider
from keyservice.keys.kms import KmsRootKeyProvider
from keyservice.keys.local_file import LocalFileRootKeyProvider
from keyservice.keys.root import KEY_SIZE, RootKeyProvider, generate_key
from keyservice.keys.select import open_root_key, parse_root_key
from keyservice.keys.transition import RootKeyTransition

__all__ = [
    "KEY_SIZE",
    "FakeRootKeyProvider",
    "KmsRootKeyProvider",
    "LocalFileRootKeyProvider",
    "Pkcs11RootKeyProvider",
    "RecordKeyRewrapper",
    "RootKeyProvider",
    "RootKeyTransition",
    "generate_child_key",
    "generate_key",
    "move_child_key",
    "open_root_key",
    "parse_root_key",
    "rewrap_child_key",
    "unwrap_child_key",
    "unwrap_record_key",
    "wrap_child_key",
    "wrap_record_key",
]
