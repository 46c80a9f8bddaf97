"""An in-memory BlobStore for unit tests of the parts that use a store.

It keeps the real stores' contract — name checks, ObjectNotFound, multipart part order and
ETags, expiring URLs — so that code tested against it behaves the same on S3 or a directory.
Its URLs (``memory://<token>``) cannot be fetched over HTTP; a test plays the client with
``upload_to(url, data)`` and ``download_from(url)``.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vault.format.digest import new_hasher
from vault.storage.base import (
    BlobReader,
    ByteSource,
    CompletedPart,
    MultipartUpload,
    ObjectInfo,
    PendingUpload,
    check_parts,
    plan_parts,
)
from vault.storage.errors import InvalidToken, ObjectNotFound, UploadError, WrongSize
from vault.storage.names import check_object_name, check_prefix, new_object_name
from vault.storage.tokens import BlobGrant, Method, TokenSigner, part_grants

SCHEME = "memory://"


@dataclass
class _Upload:
    name: str
    size: int
    part_size: int
    started_at: datetime
    parts: dict[int, bytes] = field(default_factory=dict)


class MemoryStore:
    """Objects in a dict. Thread-safe, so it can stand behind a threaded test server."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._objects: dict[str, tuple[bytes, datetime]] = {}
        self._uploads: dict[str, _Upload] = {}
        self._signer = TokenSigner(secrets.token_bytes(32))
        self._clock = clock
        self._lock = threading.Lock()

    # --- the client's side of a URL ---------------------------------------------------------

    def upload_to(self, url: str, data: bytes) -> str:
        """Do what a client's ``PUT url`` would; return the ETag."""
        grant = self._grant(url, "PUT")
        assert grant.size is not None  # every upload grant has one (BlobGrant)
        if len(data) != grant.size:
            raise WrongSize(expected=grant.size, larger=len(data) > grant.size)
        with self._lock:
            if grant.upload_id is None or grant.part_number is None:
                self._objects[grant.name] = (bytes(data), self._now())
            else:
                upload = self._uploads.get(grant.upload_id)
                if upload is None or upload.name != grant.name:
                    raise ObjectNotFound("no such multipart upload")
                upload.parts[grant.part_number] = bytes(data)
        return _etag(data)

    def download_from(self, url: str) -> bytes:
        """Do what a client's ``GET url`` would."""
        grant = self._grant(url, "GET")
        with self._lock:
            return self._object(grant.name)[0]

    # --- BlobStore --------------------------------------------------------------------------

    def presign_put(self, name: str, *, size: int, expires_s: int) -> str:
        expires_at = self._expiry(expires_s)
        return self._url(BlobGrant(check_object_name(name), "PUT", expires_at, size=size))

    def presign_get(self, name: str, *, expires_s: int) -> str:
        return self._url(BlobGrant(check_object_name(name), "GET", self._expiry(expires_s)))

    def start_multipart(
        self, name: str, *, size: int, part_size: int, expires_s: int
    ) -> MultipartUpload:
        check_object_name(name)
        upload_id = new_object_name()
        grants = part_grants(
            name,
            upload_id=upload_id,
            size=size,
            part_size=part_size,
            expires_at=self._expiry(expires_s),
        )
        with self._lock:
            self._uploads[upload_id] = _Upload(name, size, part_size, self._now())
        urls = tuple(self._url(grant) for grant in grants)
        return MultipartUpload(upload_id=upload_id, part_size=part_size, part_urls=urls)

    def complete_multipart(self, name: str, *, upload_id: str, parts: list[CompletedPart]) -> None:
        with self._lock:
            upload = self._upload(name, upload_id)
            check_parts(parts, expected=plan_parts(upload.size, upload.part_size))
            chunks = []
            for part in parts:
                data = upload.parts.get(part.part_number)
                if data is None or _etag(data).strip('"') != part.etag.strip('"'):
                    raise UploadError(f"part {part.part_number} is missing or does not match")
                chunks.append(data)
            joined = b"".join(chunks)
            if len(joined) != upload.size:
                raise UploadError(f"the parts make {len(joined)} bytes, not {upload.size}")
            self._objects[name] = (joined, self._now())
            del self._uploads[upload_id]

    def abort_multipart(self, name: str, *, upload_id: str) -> None:
        with self._lock:
            self._upload(name, upload_id)
            del self._uploads[upload_id]

    def list_uploads(self, *, started_before: datetime) -> Iterator[PendingUpload]:
        with self._lock:
            pending = [
                PendingUpload(name=u.name, upload_id=upload_id, started_at=u.started_at)
                for upload_id, u in sorted(self._uploads.items())
                if u.started_at < started_before
            ]
        return iter(pending)

    def remove_stale_temporaries(self, *, modified_before: datetime) -> int:
        # Nothing is written in place of an object here.
        return 0

    def stat(self, name: str) -> ObjectInfo:
        with self._lock:
            data, modified = self._object(name)
        return ObjectInfo(size=len(data), sha256=None, modified_at=modified)

    def sha256(self, name: str) -> bytes:
        with self._lock:
            return hashlib.sha256(self._object(name)[0]).digest()

    def sha256_if_size(self, name: str, *, size: int) -> bytes | None:
        return self.digest_if_size(name, size=size, alg="sha256")

    def digest_if_size(self, name: str, *, size: int, alg: str) -> bytes | None:
        hasher = new_hasher(alg)
        with self._lock:
            data = self._object(name)[0]
        if len(data) != size:
            return None
        hasher.update(data)
        return hasher.digest()

    def md5s_match(
        self, name: str, *, size: int, part_md5s: Sequence[bytes], multipart: bool
    ) -> bool:
        # Like the local store, it keeps no MD5s: a commit reads the object.
        with self._lock:
            self._object(name)
        return False

    def delete(self, name: str) -> None:
        check_object_name(name)
        with self._lock:
            self._objects.pop(name, None)

    def list_names(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        with self._lock:
            names = sorted(n for n in self._objects if n.startswith(prefix))
        return iter(names)

    def put(self, name: str, source: ByteSource) -> None:
        check_object_name(name)
        data = source.read()
        with self._lock:
            self._objects[name] = (data, self._now())

    def get(self, name: str) -> BlobReader:
        with self._lock:
            return io.BytesIO(self._object(name)[0])

    # --- internals (callers hold the lock where state is touched) ---------------------------

    def _object(self, name: str) -> tuple[bytes, datetime]:
        check_object_name(name)
        try:
            return self._objects[name]
        except KeyError:
            raise ObjectNotFound("no such object") from None

    def _upload(self, name: str, upload_id: str) -> _Upload:
        check_object_name(name)
        upload = self._uploads.get(upload_id)
        if upload is None or upload.name != name:
            raise ObjectNotFound("no such multipart upload")
        return upload

    def _grant(self, url: str, method: Method) -> BlobGrant:
        if not url.startswith(SCHEME):
            raise InvalidToken()
        return self._signer.verify(url.removeprefix(SCHEME), method=method, now=self._clock())

    def _url(self, grant: BlobGrant) -> str:
        return SCHEME + self._signer.sign(grant)

    def _expiry(self, expires_s: int) -> int:
        if expires_s < 1:
            raise ValueError("a URL must be valid for at least one second")
        return int(self._clock()) + expires_s

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'
