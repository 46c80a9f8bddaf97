"""The S3 blob store: AWS S3 or anything S3-compatible (MinIO, Ceph, R2), through boto3.

boto3 is the client (docs/decisions/0001-s3-client.md): the key service presigns, stats,
digests and deletes; clients move bytes through presigned URLs. Large direct writes
(``put``) go up in parts through boto3's transfer manager.

An upload URL signs the Content-Length of the body it takes (the whole object, or one part),
so S3 refuses a PUT of any other size (the signature no longer matches). A presigned URL
cannot be revoked: it stays usable until it expires, after its version is gone too
(docs/decisions/0010-upload-bounds.md says what bounds that).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vault.storage.base import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
    BlobReader,
    ByteSource,
    CompletedPart,
    MultipartUpload,
    ObjectInfo,
    PendingUpload,
    check_parts,
    part_length,
    plan_parts,
)
from vault.storage.errors import BackendError, ObjectNotFound, UploadError
from vault.storage.names import check_object_name, check_prefix, is_object_name

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})
_BAD_UPLOAD = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall"})
# Never wait long on storage: a stuck backend must not hold a key service worker.
_CLIENT_CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
)
_TRANSFER = TransferConfig(multipart_threshold=8 * MIN_PART_SIZE, multipart_chunksize=MIN_PART_SIZE)


class S3Store:
    """Objects in one bucket, named by their opaque names (no prefix, no metadata)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @classmethod
    def connect(cls, bucket: str, *, endpoint_url: str | None = None) -> S3Store:
        """A store on ``bucket`` with credentials and region from the usual AWS sources."""
        client = boto3.client("s3", endpoint_url=endpoint_url, config=_CLIENT_CONFIG)
        return cls(client, bucket)

    def __repr__(self) -> str:
        return f"S3Store(bucket={self._bucket!r})"

    @property
    def bucket(self) -> str:
        return self._bucket

    def presign_put(self, name: str, *, size: int, expires_s: int) -> str:
        return self._presign(
            "put_object", {"Key": check_object_name(name), "ContentLength": size}, expires_s
        )

    def presign_get(self, name: str, *, expires_s: int) -> str:
        return self._presign("get_object", {"Key": check_object_name(name)}, expires_s)

    def start_multipart(
        self, name: str, *, size: int, part_size: int, expires_s: int
    ) -> MultipartUpload:
        check_object_name(name)
        count = plan_parts(size, part_size)
        with _translated():
            upload_id = str(
                self._client.create_multipart_upload(Bucket=self._bucket, Key=name)["UploadId"]
            )
        urls = tuple(
            self._presign(
                "upload_part",
                {
                    "Key": name,
                    "UploadId": upload_id,
                    "PartNumber": number,
                    "ContentLength": part_length(size, part_size, number),
                },
                expires_s,
            )
            for number in range(1, count + 1)
        )
        return MultipartUpload(upload_id=upload_id, part_size=part_size, part_urls=urls)

    def complete_multipart(self, name: str, *, upload_id: str, parts: list[CompletedPart]) -> None:
        check_object_name(name)
        check_parts(parts)
        with _translated():
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.part_number, "ETag": p.etag} for p in parts]
                },
            )

    def abort_multipart(self, name: str, *, upload_id: str) -> None:
        check_object_name(name)
        with _translated():
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=name, UploadId=upload_id)

    def list_uploads(self, *, started_before: datetime) -> Iterator[PendingUpload]:
        paginator = self._client.get_paginator("list_multipart_uploads")
        with _translated():
            for page in paginator.paginate(Bucket=self._bucket):
                for upload in page.get("Uploads", []):
                    if is_object_name(upload["Key"]) and upload["Initiated"] < started_before:
                        yield PendingUpload(
                            name=upload["Key"],
                            upload_id=upload["UploadId"],
                            started_at=upload["Initiated"],
                        )

    def remove_stale_temporaries(self, *, modified_before: datetime) -> int:
        # S3 writes nothing in place of an object; unfinished uploads are list_uploads'.
        return 0

    def stat(self, name: str) -> ObjectInfo:
        check_object_name(name)
        with _translated():
            head = self._client.head_object(Bucket=self._bucket, Key=name)
        # No digest, even when the object carries an x-amz-checksum-sha256: that value is
        # the uploader's, and only some S3-compatible stores check it against the bytes they
        # received (moto keeps it unchecked), so it is no evidence of what is stored. A commit
        # reads the object instead (docs/decisions/0006-commit-digest-check.md).
        return ObjectInfo(
            size=int(head["ContentLength"]), sha256=None, modified_at=head["LastModified"]
        )

    def sha256(self, name: str) -> bytes:
        digest = hashlib.sha256()
        stream = self.get(name)
        try:
            with _translated():
                while chunk := stream.read(CHUNK_SIZE):
                    digest.update(chunk)
        finally:
            stream.close()
        return digest.digest()

    def sha256_if_size(self, name: str, *, size: int) -> bytes | None:
        # One GET whose Content-Length is checked before the body is read: a HEAD first
        # would cost a second round trip on every commit.
        check_object_name(name)
        with _translated():
            response = self._client.get_object(Bucket=self._bucket, Key=name)
        body = response["Body"]
        try:
            if int(response["ContentLength"]) != size:
                return None
            digest = hashlib.sha256()
            read = 0
            with _translated():
                while chunk := body.read(CHUNK_SIZE):
                    read += len(chunk)
                    if read > size:
                        return None
                    digest.update(chunk)
            return digest.digest() if read == size else None
        finally:
            body.close()

    def md5s_match(
        self, name: str, *, size: int, part_md5s: Sequence[bytes], multipart: bool
    ) -> bool:
        # S3 computes an object's ETag from the bytes it received: the MD5 of a single PUT,
        # or the MD5 of the parts' MD5s and their count for a multipart upload. Not so for
        # objects encrypted with SSE-KMS or SSE-C, whose ETag is opaque: those never match,
        # and the commit reads the object instead.
        check_object_name(name)
        with _translated():
            head = self._client.head_object(Bucket=self._bucket, Key=name)
        if int(head["ContentLength"]) != size or not part_md5s:
            return False
        if multipart:
            of_parts = hashlib.md5(b"".join(part_md5s), usedforsecurity=False)
            expected = f"{of_parts.hexdigest()}-{len(part_md5s)}"
        elif len(part_md5s) == 1:
            expected = part_md5s[0].hex()
        else:
            return False
        # Not a secret: a plain comparison (compare_digest refuses non-ASCII text).
        return str(head.get("ETag", "")).strip('"') == expected

    def delete(self, name: str) -> None:
        check_object_name(name)
        with _translated():
            self._client.delete_object(Bucket=self._bucket, Key=name)

    def list_names(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        with _translated():
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    if is_object_name(entry["Key"]):
                        yield entry["Key"]

    def put(self, name: str, source: ByteSource) -> None:
        check_object_name(name)
        with _translated():
            self._client.upload_fileobj(source, self._bucket, name, Config=_TRANSFER)

    def get(self, name: str) -> BlobReader:
        check_object_name(name)
        with _translated():
            body: BlobReader = self._client.get_object(Bucket=self._bucket, Key=name)["Body"]
        return body

    def _presign(self, operation: str, params: dict[str, object], expires_s: int) -> str:
        if expires_s < 1:
            raise ValueError("a URL must be valid for at least one second")
        with _translated():
            url: str = self._client.generate_presigned_url(
                operation, Params={"Bucket": self._bucket, **params}, ExpiresIn=expires_s
            )
        return url


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turns botocore's exceptions into the store's own, with the cause chained."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND:
            raise ObjectNotFound("no such object or upload") from exc
        if code in _BAD_UPLOAD:
            raise UploadError("the uploaded parts do not make up the object") from exc
        raise BackendError(f"S3 refused the request ({code})") from exc
    except BotoCoreError as exc:
        raise BackendError("S3 could not be reached") from exc
