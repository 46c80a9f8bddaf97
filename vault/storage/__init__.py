"""Blob stores: opaque ciphertext objects on S3-compatible storage or in a local directory.

``BlobStore`` is the interface; ``S3Store`` and ``LocalDirectoryStore`` are the backends,
``MemoryStore`` the fake for unit tests, ``make_blob_store`` builds one from a settings
string. Names come from ``new_object_name`` and mean nothing.
"""

from __future__ import annotations

from vault.storage.base import (
    CHUNK_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    BlobReader,
    BlobStore,
    ByteSource,
    CompletedPart,
    MultipartUpload,
    ObjectInfo,
    PendingUpload,
    plan_parts,
)
from vault.storage.errors import (
    BackendError,
    InvalidObjectName,
    InvalidToken,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    UploadError,
    WrongSize,
)
from vault.storage.factory import make_blob_store
from vault.storage.local import BLOB_ROUTE, LocalDirectoryStore
from vault.storage.memory import MemoryStore
from vault.storage.names import check_object_name, is_object_name, new_object_name
from vault.storage.s3 import S3Store
from vault.storage.tokens import BlobGrant, TokenSigner

__all__ = [
    "BLOB_ROUTE",
    "CHUNK_SIZE",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "BackendError",
    "BlobGrant",
    "BlobReader",
    "BlobStore",
    "ByteSource",
    "CompletedPart",
    "InvalidObjectName",
    "InvalidToken",
    "LocalDirectoryStore",
    "MemoryStore",
    "MultipartUpload",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "PendingUpload",
    "S3Store",
    "StorageError",
    "TokenSigner",
    "UploadError",
    "WrongSize",
    "check_object_name",
    "is_object_name",
    "make_blob_store",
    "new_object_name",
    "plan_parts",
]
