"""Moving ciphertext to and from object storage through the short-lived URLs the key service
hands out. This device never holds storage credentials; a URL addresses one object only."""

from __future__ import annotations

import hashlib
import hmac
import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, cast

import httpx

from vault.client.models import ExpectedCiphertext, SingleUpload, UploadPlan
from vault.errors import TransferError, UploadError
from vault.format import IntegrityError, new_hasher

Progress = Callable[[int], None]
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
# A record whose ciphertext is at most this size is encrypted or received whole in memory on
# the calling thread, with no pipe or hashing thread. Their start-up and hand-offs cost the
# client CPU at every size (same-run on moto: 1.3 ms of a 100 KiB put and get, 1.6 ms at
# 1 MiB) and buy overlap only for larger records: a put and get take as long either way at
# 1 MiB, and above it the streamed put, which encrypts while it sends, pulls ahead. It also
# bounds the memory such a record takes.
SMALL_CIPHERTEXT_SIZE = 1 << 20


# Blob reads ask for the bytes as stored: a ciphertext does not compress, and a body that
# httpx decompressed could be far larger than the bytes counted against the committed size.
AS_STORED = {"Accept-Encoding": "identity"}


def _refuse_encoded(response: httpx.Response) -> None:
    """Refuse a body the store sent encoded although asked not to: httpx would decode it, and
    it could be far larger than the bytes counted against the committed size."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise TransferError(f"storage sent the ciphertext {encoding}-encoded; nothing was written")


def new_blob_client() -> httpx.Client:
    """An HTTP client for blob URLs: no key service auth, long transfers allowed."""
    return httpx.Client(timeout=DEFAULT_TIMEOUT)


def _counted(pieces: Iterator[bytes], progress: Progress | None) -> Iterator[bytes]:
    for piece in pieces:
        yield piece
        if progress is not None:
            progress(len(piece))


def _put(
    http: httpx.Client, url: str, body: Iterator[bytes], size: int, progress: Progress | None
) -> httpx.Response:
    # An explicit Content-Length keeps httpx from sending a chunked body, which presigned
    # S3 PUTs do not accept; the generator streams, so memory stays at one piece.
    try:
        response = http.put(
            url, content=_counted(body, progress), headers={"Content-Length": str(size)}
        )
    except httpx.HTTPError as exc:
        raise UploadError("the upload to storage was interrupted; nothing was saved") from exc
    if response.is_error:
        raise UploadError(
            f"storage refused the upload (HTTP {response.status_code}); nothing was saved"
        )
    return response


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    etag: str


class _InOrder:
    """Runs calls in the order given on one thread of its own, with at most ``depth`` waiting
    (so the data they hold stays bounded); hashlib releases the GIL while it hashes a large
    block, so hashing there overlaps the caller's work."""

    def __init__(self, name: str, depth: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"carevault-{name}")
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def submit(self, call: Callable[..., None], *args: Any) -> None:
        if len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(call, *args))

    def drain(self) -> None:
        """Wait for every call submitted so far; re-raise the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class PartMd5s:
    """A writable stream that passes everything to ``dst`` and keeps the MD5 of each
    ``part_size`` bytes: what a store that keeps MD5s (S3's ETag) checks at commit
    (docs/decisions/0008-commit-checks-the-store-etag.md).

    It wraps the encryptor's output, so the MD5s cover exactly the bytes whose digest the
    encryptor reports. With ``threaded`` the hashing runs on a thread of its own, overlapping
    encryption and the upload (a 64 MiB put spent ~50 ms more with it on the encrypting
    thread); use ``close`` then.
    """

    def __init__(self, dst: BinaryIO, part_size: int, *, threaded: bool = False) -> None:
        if part_size < 1:
            raise ValueError("part_size must be positive")
        self._dst = dst
        self._part_size = part_size
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._filled = 0
        self._done: list[bytes] = []
        # 64 pieces of the encryptor's 256 KiB: 16 MiB at most waiting to be hashed.
        self._worker = _InOrder("md5", depth=64) if threaded else None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        # The encryptor reuses its buffer: a thread hashing later needs bytes of its own, and
        # the pipe downstream keeps the same object without copying it again.
        chunk = bytes(data) if self._worker is not None else data
        view = memoryview(chunk)
        while len(view) > 0:
            piece = view[: self._part_size - self._filled]
            self._filled += len(piece)
            ends_part = self._filled == self._part_size
            if self._worker is None:
                self._hash(piece, ends_part)
            else:
                self._worker.submit(self._hash, piece, ends_part)
            if ends_part:
                self._filled = 0
            view = view[len(piece) :]
        return self._dst.write(chunk)

    def _hash(self, piece: memoryview, ends_part: bool) -> None:
        self._md5.update(piece)
        if ends_part:
            self._done.append(self._md5.digest())
            self._md5 = hashlib.md5(usedforsecurity=False)

    def flush(self) -> None:
        self._dst.flush()

    def writable(self) -> bool:
        return True

    def md5s(self) -> list[bytes]:
        """One MD5 per piece written so far: full parts, then the partial last one."""
        if self._worker is not None:
            self._worker.drain()
        return [*self._done, self._md5.digest()] if self._filled else list(self._done)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()


class Ciphertext(Protocol):
    """Where an upload takes its bytes, in order: the pipe the encryptor writes into
    (``PipeProducer``), or a small record's whole ciphertext (``InMemory``)."""

    def iter_exactly(self, size: int) -> Iterator[bytes]: ...


class InMemory:
    """A ciphertext already in memory, handed out in order as a pipe would."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def iter_exactly(self, size: int) -> Iterator[bytes]:
        """The next ``size`` bytes in one piece (the whole object when it is all asked for,
        without a copy); fewer only at the end."""
        piece = self._data[self._offset : self._offset + size]
        self._offset += len(piece)
        if piece:
            yield piece


def upload(
    http: httpx.Client,
    plan: UploadPlan,
    *,
    size: int,
    source: Ciphertext,
    progress: Progress | None = None,
) -> list[UploadedPart]:
    """Upload exactly ``size`` bytes from ``source`` as ``plan`` says.

    The parts of a multipart upload are returned: the commit names them, and the key service
    completes the upload then.
    """
    if isinstance(plan, SingleUpload):
        _put(http, plan.url, source.iter_exactly(size), size, progress)
        return []
    part_size = plan.part_size
    if len(plan.part_urls) != max(1, -(-size // part_size)):
        raise UploadError("the key service's multipart plan does not fit the record's size")
    parts = []
    for index, url in enumerate(plan.part_urls):
        length = min(part_size, size - index * part_size)
        response = _put(http, url, source.iter_exactly(length), length, progress)
        etag = response.headers.get("ETag")
        if not etag:
            raise UploadError("storage did not acknowledge an upload part")
        parts.append(UploadedPart(part_number=index + 1, etag=etag))
    return parts


def _committed_bytes(response: httpx.Response, expected: ExpectedCiphertext) -> Iterator[bytes]:
    """The response body as it arrives, held to the committed size: it stops at the first
    byte past that size rather than stream an unbounded substitute to the end, and raises
    when the body ends short. An encoded body is refused before it is read, so a store cannot
    inflate a small body in memory."""
    _refuse_encoded(response)
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) != expected.size:
        more_or_fewer = "more" if int(declared) > expected.size else "fewer"
        raise IntegrityError() from ValueError(
            f"storage sent {more_or_fewer} bytes than the committed ciphertext size"
        )
    received = 0
    try:
        for piece in response.iter_bytes():
            received += len(piece)
            if received > expected.size:
                raise IntegrityError() from ValueError(
                    "storage sent more bytes than the committed ciphertext size"
                )
            yield piece
    except httpx.HTTPError as exc:
        raise TransferError("the download from storage was interrupted") from exc
    if received != expected.size:
        raise IntegrityError() from ValueError(
            "storage sent fewer bytes than the committed ciphertext size"
        )


def check_ciphertext(data: bytes | bytearray | memoryview, expected: ExpectedCiphertext) -> None:
    """Raise IntegrityError unless ``data`` is exactly the ciphertext the key service checked
    at commit: its committed size and its digest, in the algorithm the version names."""
    if len(data) != expected.size:
        raise IntegrityError() from ValueError("the ciphertext's size differs from the committed")
    hasher = new_hasher(expected.digest.alg)
    hasher.update(data)
    _check_digest(hasher.digest(), expected)


def _check_digest(digest: bytes, expected: ExpectedCiphertext) -> None:
    if not hmac.compare_digest(digest, expected.digest.value):
        raise IntegrityError() from ValueError(
            f"the ciphertext's {expected.digest.alg} digest differs from the one checked at commit"
        )


def _read_whole(
    response: httpx.Response, expected: ExpectedCiphertext, progress: Progress | None
) -> bytes:
    """A small record's whole ciphertext, checked against its committed size and digest."""
    body = b"".join(_committed_bytes(response, expected))
    if progress is not None:
        progress(len(body))
    check_ciphertext(body, expected)
    return body


class _CheckedBody(io.RawIOBase):
    """A readable stream over a download's body, on the reading thread: every piece is hashed
    as it arrives, then copied once, straight into the reader's buffer. When the body ends
    its size and digest are checked, before the end is reported, so a reader that waits for
    the end of the stream before using its last bytes (``vault.format.decrypt`` does) never
    uses a ciphertext other than the committed one.

    No thread of its own: while this thread decrypts and writes, the kernel keeps receiving
    into the socket's buffer, and handing blocks between threads cost more CPU (a wake-up
    per block, and a copy to join the network's pieces into blocks) than it overlapped."""

    def __init__(
        self, pieces: Iterator[bytes], expected: ExpectedCiphertext, progress: Progress | None
    ) -> None:
        self._pieces = pieces
        self._expected = expected
        self._progress = progress
        self._hasher = new_hasher(expected.digest.alg)
        self._unread = memoryview(b"")
        self.checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._unread:
                if self.checked:
                    break
                piece = next(self._pieces, None)
                if piece is None:
                    # The size was checked as the pieces came; the digest is checked here.
                    _check_digest(self._hasher.digest(), self._expected)
                    self.checked = True
                    break
                self._hasher.update(piece)
                if self._progress is not None:
                    self._progress(len(piece))
                self._unread = memoryview(piece)
            count = min(len(view) - filled, len(self._unread))
            view[filled : filled + count] = self._unread[:count]
            self._unread = self._unread[count:]
            filled += count
        return filled


class Download:
    """A checked download: use as a context manager, read ``stream``, then call ``verify``.

    The format's authentication cannot tell a blob replaced after commit by someone holding
    the record key (its creator, through an upload URL) from the original, but the committed
    size and digest can, so every byte received is counted and hashed.

    A ciphertext of at most ``SMALL_CIPHERTEXT_SIZE`` is received whole and checked on entry.
    A larger one is streamed, hashed as it is read (``_CheckedBody``): its size and digest
    are checked when its end is read, which ``vault.format.decrypt`` does before it writes the
    last chunk, and ``verify`` makes sure of it.
    """

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        progress: Progress | None,
        *,
        expected: ExpectedCiphertext,
    ) -> None:
        self._http = http
        self._url = url
        self._progress = progress
        self._expected = expected
        self._response: httpx.Response | None = None
        self._body: _CheckedBody | None = None
        self._stream: BinaryIO | None = None

    @property
    def stream(self) -> BinaryIO:
        """The ciphertext as it arrives; every byte was counted and hashed on the way."""
        if self._stream is None:
            raise RuntimeError("enter the download's context first")
        return self._stream

    def __enter__(self) -> Download:
        request = self._http.build_request("GET", self._url, headers=AS_STORED)
        try:
            self._response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise TransferError("cannot reach storage to download the record") from exc
        if self._response.is_error:
            status = self._response.status_code
            self._response.close()
            raise TransferError(f"storage refused the download (HTTP {status})")
        response, progress, expected = self._response, self._progress, self._expected
        if expected.size <= SMALL_CIPHERTEXT_SIZE:
            try:
                self._stream = io.BytesIO(_read_whole(response, expected, progress))
            finally:
                response.close()
            return self
        self._body = _CheckedBody(_committed_bytes(response, expected), expected, progress)
        # A small buffer serves the header's short reads; the format's chunk-sized reads are
        # larger than it, so they go straight into the decryptor's buffer.
        self._stream = cast(BinaryIO, io.BufferedReader(self._body, buffer_size=1 << 16))
        return self

    def verify(self) -> None:
        """Raise IntegrityError unless the whole object was read and matched its size and
        digest. Call it after decrypting and before using the plaintext."""
        if self.stream.read(1):
            raise IntegrityError() from ValueError("bytes follow the end of the record")
        # A small ciphertext was checked on entry; a streamed one when its end was read.
        if self._body is not None and not self._body.checked:
            raise IntegrityError() from ValueError("the download was not read to its end")

    def __exit__(self, *exc_info: object) -> None:
        if self._response is not None:
            self._response.close()


def read_range(http: httpx.Client, url: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the object at ``url`` (an HTTP Range request).

    Nothing here checks the committed size or digest: a range covers only part of the
    object. ``Client.get_range`` says what still protects such a read.
    """
    if end <= start:
        return b""
    wanted = end - start
    headers = {**AS_STORED, "Range": f"bytes={start}-{end - 1}"}
    try:
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code != 206:
                raise TransferError(f"storage refused the range read (HTTP {response.status_code})")
            _refuse_encoded(response)
            pieces, received = [], 0
            for piece in response.iter_bytes():
                received += len(piece)
                if received > wanted:
                    raise TransferError("storage sent more than the range asked for")
                pieces.append(piece)
    except httpx.HTTPError as exc:
        raise TransferError("cannot reach storage to read the record") from exc
    return b"".join(pieces)
