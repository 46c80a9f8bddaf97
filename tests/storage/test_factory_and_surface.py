"""make_blob_store, names, the memory fake's URLs, and the package's public surface."""

from __future__ import annotations

from pathlib import Path

import pytest

import vault.storage
from vault.storage import (
    BlobStore,
    InvalidObjectName,
    InvalidToken,
    LocalDirectoryStore,
    MemoryStore,
    S3Store,
    check_object_name,
    is_object_name,
    make_blob_store,
    new_object_name,
)

KEY = b"f" * 32


def test_local_spec(tmp_path: Path) -> None:
    store = make_blob_store(
        f"local:{tmp_path / 'blobs'}",
        s3_endpoint_url=None,
        public_url="http://127.0.0.1:9",
        token_key=KEY,
    )
    assert isinstance(store, LocalDirectoryStore)
    assert store.root == (tmp_path / "blobs").resolve()
    assert store.presign_get(new_object_name(), expires_s=5).startswith(
        "http://127.0.0.1:9/v1/blobs/"
    )


def test_s3_spec() -> None:
    store = make_blob_store(
        "s3://carevault-blobs",
        s3_endpoint_url="http://127.0.0.1:9",
        public_url="http://unused",
        token_key=KEY,
    )
    assert isinstance(store, S3Store)
    assert store.bucket == "carevault-blobs"


@pytest.mark.parametrize("spec", ["", "local:", "s3://", "s3://a/b", "file:/tmp", "/tmp/blobs"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        make_blob_store(spec, s3_endpoint_url=None, public_url="http://x", token_key=KEY)


def test_new_names_are_random_and_well_formed() -> None:
    names = {new_object_name() for _ in range(1000)}
    assert len(names) == 1000
    assert all(is_object_name(n) and check_object_name(n) == n for n in names)
    with pytest.raises(InvalidObjectName):
        check_object_name(b"a" * 32)


def test_memory_urls_expire_and_are_bound_to_their_method() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    name = new_object_name()
    put = store.presign_put(name, size=4, expires_s=10)
    get = store.presign_get(name, expires_s=10)
    store.upload_to(put, b"data")
    with pytest.raises(InvalidToken):
        store.upload_to(get, b"x")
    with pytest.raises(InvalidToken):
        store.download_from(put)
    with pytest.raises(InvalidToken):
        store.download_from("http://elsewhere/" + get.removeprefix("memory://"))
    now[0] = 1010.0
    with pytest.raises(InvalidToken):
        store.download_from(get)


def test_backends_satisfy_the_protocol(tmp_path: Path) -> None:
    stores: list[BlobStore] = [
        MemoryStore(),
        LocalDirectoryStore(tmp_path, base_url="http://x", token_key=KEY),
    ]
    for store in stores:
        for method in [
            "presign_put",
            "presign_get",
            "start_multipart",
            "complete_multipart",
            "abort_multipart",
            "stat",
            "sha256",
            "sha256_if_size",
            "digest_if_size",
            "delete",
            "list_names",
            "list_uploads",
            "remove_stale_temporaries",
            "put",
            "get",
        ]:
            assert callable(getattr(store, method))


def test_public_surface() -> None:
    assert sorted(vault.storage.__all__) == sorted(
        [
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
            "ObjectInfo",
            "ObjectExists",
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
    )
    for name in vault.storage.__all__:
        assert hasattr(vault.storage, name)
    for error in [
        "ObjectExists",
        "ObjectNotFound",
        "InvalidObjectName",
        "InvalidToken",
        "UploadError",
        "WrongSize",
    ]:
        assert issubclass(getattr(vault.storage, error), vault.storage.StorageError)
