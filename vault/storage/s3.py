"""The S3 blob store: AWS S3 or anything S3-compatible (MinIO, Ceph, R2).

Two clients share one set of credentials (docs/decisions/0001-s3-client.md): minio-py for
the calls the key service makes per record — presigning downloads, HEAD, the commit's
digest GET, DELETE, listing — at less than half of boto3's CPU per request; boto3 for what
minio-py cannot do through its public API: upload URLs that sign their Content-Length, the
multipart upload's create/complete/abort/list, and large direct writes (``put``) through
boto3's transfer manager. Clients move bytes through presigned URLs.

An upload URL signs the Content-Length of the body it takes (the whole object, or one part),
so S3 refuses a PUT of any other size (the signature no longer matches). A presigned URL
cannot be revoked: it stays usable until it expires, after its version is gone too
(docs/decisions/0010-upload-bounds.md says what bounds that).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from minio import Minio
from minio.credentials.credentials import Credentials
from minio.credentials.providers import Provider
from minio.error import MinioException, S3Error

from vault.format.digest import new_hasher
from vault.storage.base import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
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
# The same bounds for minio-py's connection pool; as many connections as the key service
# has worker threads, so a burst of commits never waits for one.
_POOL_SIZE = 40
_TIMEOUT = urllib3.Timeout(connect=5, read=30)
_RETRIES = urllib3.Retry(
    total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504), allowed_methods=None
)
_DEFAULT_REGION = "us-east-1"


class S3Store:
    """Objects in one bucket, named by their opaque names (no prefix, no metadata)."""

    def __init__(self, bucket: str, *, client: Any, requests: Minio) -> None:
        self._bucket = bucket
        self._client = client
        self._requests = requests

    @classmethod
    def connect(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
    ) -> S3Store:
        """A store on ``bucket``; credentials and region from ``session``, by default the
        usual AWS sources (environment, profile, instance role)."""
        session = session or boto3.Session()
        requests = _minio_client(session, endpoint_url)
        client = session.client("s3", endpoint_url=endpoint_url, config=_CLIENT_CONFIG)
        return cls(bucket, client=client, requests=requests)

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
        check_object_name(name)
        if expires_s < 1:
            raise ValueError("a URL must be valid for at least one second")
        with _translated():
            return self._requests.get_presigned_url(
                "GET", self._bucket, name, expires=timedelta(seconds=expires_s)
            )

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
            head = self._requests.stat_object(self._bucket, name)
        # No digest, even when the object carries an x-amz-checksum-sha256: that value is
        # the uploader's, and only some S3-compatible stores check it against the bytes they
        # received (moto keeps it unchecked), so it is no evidence of what is stored. A commit
        # reads the object instead (docs/decisions/0006-commit-digest-check.md).
        if head.size is None or head.last_modified is None:
            raise BackendError("S3 answered a HEAD without the object's size or time")
        return ObjectInfo(size=head.size, sha256=None, modified_at=head.last_modified)

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
        return self.digest_if_size(name, size=size, alg="sha256")

    def digest_if_size(self, name: str, *, size: int, alg: str) -> bytes | None:
        # One GET whose Content-Length is checked before the body is read: a HEAD first
        # would cost a second round trip on every commit.
        check_object_name(name)
        body = self.get(name)
        try:
            if body.length != size:
                return None
            digest = new_hasher(alg)
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
            head = self._requests.stat_object(self._bucket, name)
        if head.size != size or not part_md5s:
            return False
        if multipart:
            of_parts = hashlib.md5(b"".join(part_md5s), usedforsecurity=False)
            expected = f"{of_parts.hexdigest()}-{len(part_md5s)}"
        elif len(part_md5s) == 1:
            expected = part_md5s[0].hex()
        else:
            return False
        # Not a secret: a plain comparison (compare_digest refuses non-ASCII text).
        return str(head.etag or "").strip('"') == expected

    def delete(self, name: str) -> None:
        check_object_name(name)
        with _translated():
            self._requests.remove_object(self._bucket, name)

    def list_names(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        with _translated():
            for entry in self._requests.list_objects(self._bucket, prefix=prefix, recursive=True):
                if entry.object_name is not None and is_object_name(entry.object_name):
                    yield entry.object_name

    def put(self, name: str, source: ByteSource) -> None:
        check_object_name(name)
        with _translated():
            if isinstance(source, io.BytesIO) and source.getbuffer().nbytes <= MIN_PART_SIZE:
                # Bytes in memory (a small record's inline ciphertext, decision 0030; an audit
                # checkpoint): one PutObject, without the transfer manager and its threads.
                # boto3's, not minio-py's: over plain HTTP minio-py sends no Content-MD5 or
                # checksum, which a bucket with Object Lock requires of every PUT.
                body = source.getvalue()[source.tell() :]
                self._client.put_object(Bucket=self._bucket, Key=name, Body=body)
                return
            self._client.upload_fileobj(source, self._bucket, name, Config=_TRANSFER)

    def get(self, name: str) -> _Body:
        check_object_name(name)
        with _translated():
            return _Body(self._requests.get_object(self._bucket, name))

    def _presign(self, operation: str, params: dict[str, object], expires_s: int) -> str:
        if expires_s < 1:
            raise ValueError("a URL must be valid for at least one second")
        with _translated():
            url: str = self._client.generate_presigned_url(
                operation, Params={"Bucket": self._bucket, **params}, ExpiresIn=expires_s
            )
        return url


class _Body:
    """An object's bytes as minio-py streams them: read in chunks, then closed and its
    connection handed back to the pool."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self.length = int(response.headers.get("Content-Length", -1))

    def read(self, size: int = -1, /) -> bytes:
        with _translated():
            return self._response.read(None if size < 0 else size)

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


class _SessionCredentials(Provider):
    """boto3's credentials for minio-py: one source (environment, profile, instance role),
    refreshed by botocore when they are temporary."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session

    def retrieve(self) -> Credentials:
        found = self._session.get_credentials()
        if found is None:
            raise BackendError("no AWS credentials: set AWS_ACCESS_KEY_ID and friends")
        frozen = found.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise BackendError("the AWS credentials found lack a key id or a secret")
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def _minio_client(session: boto3.Session, endpoint_url: str | None) -> Minio:
    region = session.region_name or _DEFAULT_REGION
    if endpoint_url is None:
        endpoint, secure = f"s3.{region}.amazonaws.com", True
    else:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"an S3 endpoint is a scheme and a host: {endpoint_url!r}")
        endpoint, secure = parts.netloc, parts.scheme == "https"
    pool = urllib3.PoolManager(timeout=_TIMEOUT, retries=_RETRIES, maxsize=_POOL_SIZE, block=False)
    return Minio(
        endpoint,
        secure=secure,
        region=region,
        credentials=_SessionCredentials(session),
        http_client=pool,
    )


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turns the clients' exceptions into the store's own, with the cause chained."""
    try:
        yield
    except S3Error as exc:
        if exc.code in _NOT_FOUND:
            raise ObjectNotFound("no such object or upload") from exc
        raise BackendError(f"S3 refused the request ({exc.code})") from exc
    except MinioException as exc:
        raise BackendError(f"S3 gave an answer that is not S3's ({type(exc).__name__})") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise BackendError("S3 could not be reached") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND:
            raise ObjectNotFound("no such object or upload") from exc
        if code in _BAD_UPLOAD:
            raise UploadError("the uploaded parts do not make up the object") from exc
        raise BackendError(f"S3 refused the request ({code})") from exc
    except BotoCoreError as exc:
        raise BackendError("S3 could not be reached") from exc
