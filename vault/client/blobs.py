"""Moving ciphertext to and from object storage through the short-lived URLs the key service
hands out. This device never holds storage credentials; a URL addresses one object only."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import httpx

from vault.client.pipe import PipeProducer
from vault.errors import TransferError, UploadError

Progress = Callable[[int], None]
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


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


def upload(
    http: httpx.Client,
    descriptor: dict[str, Any],
    *,
    size: int,
    source: PipeProducer[Any],
    progress: Progress | None = None,
) -> list[UploadedPart]:
    """Upload exactly ``size`` bytes from ``source`` as ``descriptor`` says.

    A multipart upload is completed here when the descriptor carries a ``complete`` URL; the
    parts are also returned so that the commit can name them.
    """
    method = descriptor.get("method")
    if method == "single":
        _put(http, str(descriptor["url"]), source.iter_exactly(size), size, progress)
        return []
    if method != "multipart":
        raise UploadError(f"the key service asked for an unknown upload method {method!r}")
    part_size = int(descriptor["part_size"])
    urls = [str(url) for url in descriptor["part_urls"]]
    if part_size <= 0 or len(urls) != max(1, -(-size // part_size)):
        raise UploadError("the key service's multipart plan does not fit the record's size")
    parts = []
    for index, url in enumerate(urls):
        length = min(part_size, size - index * part_size)
        response = _put(http, url, source.iter_exactly(length), length, progress)
        etag = response.headers.get("ETag")
        if not etag:
            raise UploadError("storage did not acknowledge an upload part")
        parts.append(UploadedPart(part_number=index + 1, etag=etag))
    complete = descriptor.get("complete")
    if isinstance(complete, str) and complete:
        _complete_multipart(http, complete, parts)
    return parts


def _complete_multipart(http: httpx.Client, url: str, parts: list[UploadedPart]) -> None:
    root = ET.Element("CompleteMultipartUpload")
    for part in parts:
        element = ET.SubElement(root, "Part")
        ET.SubElement(element, "PartNumber").text = str(part.part_number)
        ET.SubElement(element, "ETag").text = part.etag
    try:
        response = http.post(url, content=ET.tostring(root))
    except httpx.HTTPError as exc:
        raise UploadError("completing the upload was interrupted; nothing was saved") from exc
    # S3 can answer 200 with an <Error> body when completion fails late.
    if response.is_error or b"<Error>" in response.content:
        raise UploadError("storage refused to complete the upload; nothing was saved")


class _PipeReader(io.RawIOBase):
    """A readable binary stream over a pipe's output."""

    def __init__(self, source: PipeProducer[None]) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._source.read_into(memoryview(buffer).cast("B"))


class Download:
    """A streamed download: use as a context manager, read ``stream``.

    A thread takes the response off the network into a bounded pipe, so receiving the next
    ciphertext overlaps with decrypting the previous.
    """

    def __init__(self, http: httpx.Client, url: str, progress: Progress | None) -> None:
        self._http = http
        self._url = url
        self._progress = progress
        self._response: httpx.Response | None = None
        self._pipe: PipeProducer[None] | None = None

    def __enter__(self) -> BinaryIO:
        request = self._http.build_request("GET", self._url)
        try:
            self._response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise TransferError("cannot reach storage to download the record") from exc
        if self._response.is_error:
            status = self._response.status_code
            self._response.close()
            raise TransferError(f"storage refused the download (HTTP {status})")
        response, progress = self._response, self._progress

        def receive(sink: BinaryIO) -> None:
            try:
                for piece in response.iter_bytes():
                    sink.write(piece)
                    if progress is not None:
                        progress(len(piece))
            except httpx.HTTPError as exc:
                raise TransferError("the download from storage was interrupted") from exc

        self._pipe = PipeProducer(receive)
        # A small buffer serves the header's short reads; the format's chunk-sized reads are
        # larger than it, so they go straight into the decryptor's buffer.
        return cast(BinaryIO, io.BufferedReader(_PipeReader(self._pipe), buffer_size=1 << 16))

    def __exit__(self, *exc_info: object) -> None:
        if self._pipe is not None:
            self._pipe.close()
        if self._response is not None:
            self._response.close()


def read_range(http: httpx.Client, url: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the object at ``url`` (an HTTP Range request)."""
    if end <= start:
        return b""
    try:
        response = http.get(url, headers={"Range": f"bytes={start}-{end - 1}"})
    except httpx.HTTPError as exc:
        raise TransferError("cannot reach storage to read the record") from exc
    if response.status_code == 206:
        return response.content
    raise TransferError(f"storage refused the range read (HTTP {response.status_code})")
