"""Build the blob store a deployment names in its settings (``CAREVAULT_BLOB_STORE``)."""

from __future__ import annotations

from pathlib import Path

from vault.storage.base import BlobStore
from vault.storage.local import LocalDirectoryStore
from vault.storage.s3 import S3Store

LOCAL_PREFIX = "local:"
S3_PREFIX = "s3://"


def make_blob_store(
    spec: str, *, s3_endpoint_url: str | None, public_url: str, token_key: bytes
) -> BlobStore:
    """``local:<directory>`` or ``s3://<bucket>``; anything else is a ValueError.

    ``public_url`` and ``token_key`` serve the local store's URLs (the key service's own
    address and the secret its blob tokens are signed with); ``s3_endpoint_url`` points an
    S3 store at a non-AWS endpoint (MinIO, moto), credentials come from the AWS environment.
    """
    if spec.startswith(LOCAL_PREFIX):
        directory = spec.removeprefix(LOCAL_PREFIX)
        if not directory:
            raise ValueError("a local blob store needs a directory: local:<directory>")
        return LocalDirectoryStore(Path(directory), base_url=public_url, token_key=token_key)
    if spec.startswith(S3_PREFIX):
        bucket = spec.removeprefix(S3_PREFIX)
        if not bucket or "/" in bucket:
            raise ValueError("an S3 blob store is named by its bucket alone: s3://<bucket>")
        return S3Store.connect(bucket, endpoint_url=s3_endpoint_url)
    raise ValueError(f"unknown blob store {spec!r}: use local:<directory> or s3://<bucket>")
