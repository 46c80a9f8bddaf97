"""The local-directory blob store: the embedded default, one directory on one machine.

Layout under ``root`` (created 0700):

    <aa>/<name>             objects, sharded by the first two characters of their name
    <aa>/<name>.sha256      the SHA-256 and BLAKE3 the store computed as it wrote the object
                            (objects written before BLAKE3: the SHA-256 only), with the
                            identity of that file (inode, size, modification and change time)
    .tmp/                   files being written; renamed into place only when complete
    .uploads/<upload_id>/   parts of unfinished multipart uploads, and their manifest

Writes are atomic (temporary file, fsync, link or rename, fsync of the directory), so a reader
or a crash never sees half an object. An object is written once: an upload through a URL
(``write_upload``) or the completion of a multipart upload refuses to replace an existing object
with ObjectExists, so an upload URL that is still valid after its version was committed cannot
swap the committed blob. The new object is hard-linked into place, which fails if the name is
taken, instead of renamed over it. Paths are only ever built from names that match the strict
object-name pattern, and the resolved path must still lie inside the root, so neither a
crafted name nor a symlink planted in the tree can reach outside it.

The store hashes every object as it writes it (it reads each byte once anyway) and keeps the
digest beside the object, so that ``stat`` can report it and a commit need not read the
object back. The digest is used only while the object is the very file it was computed for:
a file replaced or rewritten since has another inode, size or change time, and then
``stat`` reports no digest and the caller reads the object (docs/decisions/0006).

Clients reach objects through URLs the key service serves itself (``/v1/blobs/{token}``)
with signed, expiring tokens (``vault.storage.tokens``): the store signs them, the key service
checks them (``keyservice.localblobs``) and then calls ``write_upload`` or ``write_part``
(PUT) and ``open_sized`` (GET). An upload is taken for an exact size, as its token says; a
body of another size is refused and nothing of it is stored.

A crash (of the key service, or of the machine) can leave a file being written in ``.tmp/``
and an unfinished upload in ``.uploads/``; a sweep removes them with
``remove_stale_temporaries`` and ``list_uploads``/``abort_multipart``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from vault.format.digest import DIGEST_SIZE, Hasher, new_hasher
from vault.storage.base import (
    CHUNK_SIZE,
    BlobReader,
    ByteSource,
    CompletedPart,
    MultipartUpload,
    ObjectInfo,
    PendingUpload,
    check_parts,
    plan_parts,
)
from vault.storage.errors import (
    BackendError,
    InvalidObjectName,
    ObjectExists,
    ObjectNotFound,
    UploadError,
    WrongSize,
)
from vault.storage.names import check_object_name, check_prefix, is_object_name, new_object_name
from vault.storage.tokens import BlobGrant, TokenSigner, part_grants

BLOB_ROUTE = "/v1/blobs/"
_MANIFEST = "manifest.json"
_DIGEST_SUFFIX = ".sha256"


class LocalDirectoryStore:
    """Objects as files under ``root``; URLs served by the key service at ``base_url``."""

    def __init__(
        self,
        root: Path,
        *,
        base_url: str,
        token_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        root = Path(root)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._root = root.resolve()
        self._tmp = self._root / ".tmp"
        self._uploads = self._root / ".uploads"
        for directory in (self._tmp, self._uploads):
            directory.mkdir(mode=0o700, exist_ok=True)
        self._base_url = base_url.rstrip("/")
        self._signer = TokenSigner(token_key)
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalDirectoryStore({str(self._root)!r}, base_url={self._base_url!r})"

    @property
    def root(self) -> Path:
        return self._root

    # --- uploads and downloads through the key service's URLs -------------------------------

    def write_upload(self, name: str, source: ByteSource, *, size: int) -> str:
        """Write object ``name`` from an upload of exactly ``size`` bytes; return its ETag.

        Never replaces an object: one written already raises ObjectExists. A body of another
        size raises WrongSize and stores nothing.
        """
        path = self._object_path(name)
        # Refused before the body is copied; the link in _write_atomic is what decides.
        if path.exists():
            raise ObjectExists()
        return _etag(self._write_object(path, _Exactly(source, size), replace=False))

    def write_part(
        self, name: str, source: ByteSource, *, upload_id: str, part_number: int, size: int
    ) -> str:
        """Write one part, of exactly ``size`` bytes, of an upload of ``name``; return its ETag.

        A part may be sent again, as on S3, until the upload is completed or aborted and its
        parts are gone (ObjectNotFound). A body of another size raises WrongSize and stores
        nothing.
        """
        upload_dir = self._upload_dir(name, upload_id)
        part = upload_dir / _part_file(part_number)
        try:
            # Into the upload's own directory only: one aborted meanwhile is not re-created.
            digest = self._write_atomic(
                part, _Exactly(source, size), replace=True, make_parent=False
            )
        except FileNotFoundError as exc:
            raise ObjectNotFound("the multipart upload was aborted") from exc
        return _etag(digest)

    def open_sized(self, name: str) -> tuple[BlobReader, int]:
        """The object's stream and its size in bytes."""
        stream = self._open(name)
        return stream, os.fstat(stream.fileno()).st_size

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
        upload_dir = self._uploads / upload_id
        upload_dir.mkdir(mode=0o700)
        manifest = json.dumps({"name": name, "size": size, "part_size": part_size}).encode()
        self._write_atomic(upload_dir / _MANIFEST, _BytesSource(manifest), replace=False)
        urls = tuple(self._url(grant) for grant in grants)
        return MultipartUpload(upload_id=upload_id, part_size=part_size, part_urls=urls)

    def complete_multipart(self, name: str, *, upload_id: str, parts: list[CompletedPart]) -> None:
        upload_dir = self._upload_dir(name, upload_id)
        manifest = json.loads((upload_dir / _MANIFEST).read_bytes())
        size, part_size = int(manifest["size"]), int(manifest["part_size"])
        check_parts(parts, expected=plan_parts(size, part_size))
        sources = []
        for part in parts:
            path = upload_dir / _part_file(part.part_number)
            if not path.is_file():
                raise UploadError(f"part {part.part_number} was not uploaded")
            expected = size - part_size * (len(parts) - 1) if part is parts[-1] else part_size
            if path.stat().st_size != expected:
                raise UploadError(f"part {part.part_number} is not {expected} bytes")
            sources.append((part, path))
        with _Concatenation(sources) as joined:
            self._write_object(self._object_path(name), joined, replace=False)
        shutil.rmtree(upload_dir)

    def abort_multipart(self, name: str, *, upload_id: str) -> None:
        shutil.rmtree(self._upload_dir(name, upload_id))

    def list_uploads(self, *, started_before: datetime) -> Iterator[PendingUpload]:
        for upload_dir in sorted(self._uploads.iterdir()):
            manifest_path = upload_dir / _MANIFEST
            if not is_object_name(upload_dir.name) or upload_dir.is_symlink():
                continue
            try:
                name = json.loads(manifest_path.read_bytes())["name"]
                started = datetime.fromtimestamp(manifest_path.stat().st_mtime, UTC)
            except (FileNotFoundError, ValueError, KeyError):
                continue
            if started < started_before and is_object_name(name):
                yield PendingUpload(name=name, upload_id=upload_dir.name, started_at=started)

    def remove_stale_temporaries(self, *, modified_before: datetime) -> int:
        cutoff = modified_before.timestamp()
        removed = 0
        for entry in sorted(self._tmp.iterdir()):
            info = _lstat(entry)
            if info is not None and stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                entry.unlink(missing_ok=True)
                removed += 1
        for upload_dir in sorted(self._uploads.iterdir()):
            # An upload cut off before its manifest was written is never listed by
            # list_uploads (it names no object), so it is removed here.
            info = _lstat(upload_dir)
            if info is None or not stat.S_ISDIR(info.st_mode) or info.st_mtime >= cutoff:
                continue
            if is_object_name(upload_dir.name) and not (upload_dir / _MANIFEST).exists():
                shutil.rmtree(upload_dir, ignore_errors=True)
                removed += 1
        return removed

    def stat(self, name: str) -> ObjectInfo:
        try:
            info = self._object_path(name).stat()
        except FileNotFoundError as exc:
            raise ObjectNotFound("no such object") from exc
        modified = datetime.fromtimestamp(info.st_mtime, UTC)
        return ObjectInfo(
            size=info.st_size, sha256=self._recorded_digest(name, info), modified_at=modified
        )

    def sha256(self, name: str) -> bytes:
        digest = hashlib.sha256()
        with self._open(name) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
        return digest.digest()

    def sha256_if_size(self, name: str, *, size: int) -> bytes | None:
        return self.digest_if_size(name, size=size, alg="sha256")

    def digest_if_size(self, name: str, *, size: int, alg: str) -> bytes | None:
        new_hasher(alg)  # an unknown algorithm is a ValueError before anything is read
        try:
            info = self._object_path(name).stat()
        except FileNotFoundError as exc:
            raise ObjectNotFound("no such object") from exc
        if info.st_size != size:
            return None
        recorded = self._recorded_digest(name, info, alg)
        if recorded is not None:
            return recorded
        with self._open(name) as stream:
            return _digest_of_exactly(stream, size, alg)

    def md5s_match(
        self, name: str, *, size: int, part_md5s: Sequence[bytes], multipart: bool
    ) -> bool:
        # No MD5s kept: this store records the SHA-256 it computed as it wrote the object,
        # which ``sha256_if_size`` answers from without reading the object either.
        if not self._object_path(name).exists():
            raise ObjectNotFound("no such object")
        return False

    def delete(self, name: str) -> None:
        path = self._object_path(name)
        path.unlink(missing_ok=True)
        self._digest_path(name).unlink(missing_ok=True)
        # A shard's directory appears with its first object: an object never written may
        # have none, and then there is nothing to make durable.
        if path.parent.is_dir():
            _fsync_dir(path.parent)

    def list_names(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        for shard in sorted(self._root.iterdir()):
            if len(shard.name) != 2 or not shard.name.startswith(prefix[:2]):
                continue
            if shard.is_symlink() or not shard.is_dir():
                continue
            for entry in sorted(shard.iterdir()):
                name = entry.name
                if is_object_name(name) and name.startswith(prefix) and name[:2] == shard.name:
                    yield name

    def put(self, name: str, source: ByteSource) -> None:
        # The BlobStore contract: a direct put (tools, tests) replaces. Clients never reach
        # it; their uploads go through write_upload, which does not.
        self._write_object(self._object_path(name), source, replace=True)

    def get(self, name: str) -> BlobReader:
        return self._open(name)

    # --- URLs, paths and files ---------------------------------------------------------------

    def _url(self, grant: BlobGrant) -> str:
        """The key service's URL for ``grant``, with its signed token in the path."""
        return f"{self._base_url}{BLOB_ROUTE}{self._signer.sign(grant)}"

    def _expiry(self, expires_s: int) -> int:
        if expires_s < 1:
            raise ValueError("a URL must be valid for at least one second")
        return int(self._clock()) + expires_s

    def _object_path(self, name: str) -> Path:
        check_object_name(name)
        return self._inside(self._root / name[:2] / name)

    def _digest_path(self, name: str) -> Path:
        check_object_name(name)
        return self._inside(self._root / name[:2] / f"{name}{_DIGEST_SUFFIX}")

    def _recorded_digest(
        self, name: str, info: os.stat_result, alg: str = "sha256"
    ) -> bytes | None:
        """The ``alg`` digest written with the object, if it was written for this very file
        (files written before BLAKE3 was recorded have only the SHA-256)."""
        try:
            recorded = json.loads(self._digest_path(name).read_bytes())
            if recorded["file"] != _identity(info):
                return None
            digest = bytes.fromhex(recorded[alg])
        except (OSError, ValueError, KeyError, TypeError):
            # Missing, unreadable or malformed: the caller reads the object instead.
            return None
        return digest if len(digest) == DIGEST_SIZE else None

    def _record_digest(self, path: Path, digests: dict[str, bytes]) -> None:
        """Keep ``digests`` (by algorithm) beside the object at ``path`` (written after the
        object itself, so a crash in between leaves an object without them, which is only
        slower to check)."""
        record: dict[str, object] = {alg: d.hex() for alg, d in digests.items()}
        record["file"] = _identity(path.stat())
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(record).encode())
            os.replace(tmp_name, self._digest_path(path.name))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def _upload_dir(self, name: str, upload_id: str) -> Path:
        check_object_name(name)
        check_object_name(upload_id)
        upload_dir = self._inside(self._uploads / upload_id)
        try:
            manifest = json.loads((upload_dir / _MANIFEST).read_bytes())
        except FileNotFoundError as exc:
            raise ObjectNotFound("no such multipart upload") from exc
        if manifest.get("name") != name:
            raise ObjectNotFound("no such multipart upload for this object")
        return upload_dir

    def _inside(self, path: Path) -> Path:
        """``path`` if nothing on it is a symlink leading elsewhere, else InvalidObjectName."""
        if path.resolve() != path or not path.is_relative_to(self._root):
            raise InvalidObjectName("object path leaves the store's directory")
        return path

    def _open(self, name: str) -> BinaryIO:
        path = self._object_path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError as exc:
            raise ObjectNotFound("no such object") from exc
        except OSError as exc:
            raise BackendError("cannot open the object") from exc
        return os.fdopen(fd, "rb")

    def _write_object(self, path: Path, source: ByteSource, *, replace: bool) -> bytes:
        """``_write_atomic`` for an object, whose digests (SHA-256 and the BLAKE3 that new
        commits name) are then kept beside it; returns the SHA-256."""
        also = new_hasher("blake3")
        digest = self._write_atomic(path, source, replace=replace, also=also)
        self._record_digest(path, {"sha256": digest, "blake3": also.digest()})
        return digest

    def _write_atomic(
        self,
        path: Path,
        source: ByteSource,
        *,
        replace: bool,
        make_parent: bool = True,
        also: Hasher | None = None,
    ) -> bytes:
        """Write ``path`` so that it appears whole or not at all; return the SHA-256.

        With ``replace`` false an existing ``path`` is left as it was and ObjectExists is
        raised: the complete file is hard-linked into place, which the kernel refuses if the
        name is taken, so two racing writers cannot both succeed. Without ``make_parent`` a
        missing directory is FileNotFoundError.
        """
        if make_parent and not path.parent.exists():
            path.parent.mkdir(mode=0o700)
            _fsync_dir(path.parent.parent)
            self._inside(path)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK_SIZE):
                    out.write(chunk)
                    digest.update(chunk)
                    if also is not None:
                        also.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            if replace:
                os.replace(tmp_name, path)
            else:
                try:
                    os.link(tmp_name, path)
                except FileExistsError as exc:
                    raise ObjectExists() from exc
                os.unlink(tmp_name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(path.parent)
        return digest.digest()


def _identity(info: os.stat_result) -> list[int]:
    """What tells one file from another that later took its name or was rewritten (the
    change time, unlike the modification time, cannot be set back by a writer)."""
    return [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _lstat(path: Path) -> os.stat_result | None:
    """The entry's own status (a symlink's, not its target's); None once it is gone (a write
    that finished, or an abort, removed it meanwhile)."""
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _digest_of_exactly(stream: ByteSource, size: int, alg: str) -> bytes | None:
    """The ``alg`` digest of what ``stream`` holds if that is exactly ``size`` bytes, else
    None."""
    digest = new_hasher(alg)
    read = 0
    while chunk := stream.read(CHUNK_SIZE):
        read += len(chunk)
        if read > size:
            return None
        digest.update(chunk)
    return digest.digest() if read == size else None


def _part_file(number: int) -> str:
    return f"part-{number:05d}"


def _etag(digest: bytes) -> str:
    return f'"{digest.hex()}"'


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Exactly:
    """``source`` read as an upload of exactly ``size`` bytes: WrongSize as soon as it gives
    a byte more (never reading further), or when it ends short."""

    def __init__(self, source: ByteSource, size: int) -> None:
        self._source = source
        self._size = size
        self._read = 0

    def read(self, size: int = -1, /) -> bytes:
        allowed = self._size - self._read + 1
        chunk = self._source.read(allowed if size < 0 else min(size, allowed))
        self._read += len(chunk)
        if self._read > self._size:
            raise WrongSize(expected=self._size, larger=True)
        if not chunk and self._read < self._size:
            raise WrongSize(expected=self._size, larger=False)
        return chunk


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk = bytes(self._data[self._offset : end])
        self._offset += len(chunk)
        return chunk


class _Concatenation:
    """Reads upload parts one after another, checking each part's ETag as it ends."""

    def __init__(self, parts: list[tuple[CompletedPart, Path]]) -> None:
        self._pending = list(parts)
        self._current: tuple[CompletedPart, BinaryIO, hashlib._Hash] | None = None

    def __enter__(self) -> _Concatenation:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._current is not None:
            self._current[1].close()

    def read(self, size: int = -1, /) -> bytes:
        while True:
            if self._current is None:
                if not self._pending:
                    return b""
                part, path = self._pending.pop(0)
                self._current = (part, path.open("rb"), hashlib.sha256())
            part, stream, digest = self._current
            chunk = stream.read(size if size > 0 else CHUNK_SIZE)
            if chunk:
                digest.update(chunk)
                return chunk
            stream.close()
            self._current = None
            if part.etag.strip('"') != digest.hexdigest():
                raise UploadError(f"part {part.part_number} does not match its ETag")
