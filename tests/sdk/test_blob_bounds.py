"""A store cannot make a download hold more than the committed size: blob reads ask for the
bytes as stored, an encoded body is refused before it is read, a declared size other than the
committed one is refused before the body, and a range read stops at the range's length."""

from __future__ import annotations

import gzip

import httpx
import pytest

from vault.client.blobs import AS_STORED, Download, read_range
from vault.client.models import ExpectedCiphertext
from vault.errors import TransferError
from vault.format import IntegrityError, digest_of

URL = "http://storage.test/object"
SMALL = b"c" * 1000
BIG = b"c" * (3 << 20)


def _expected(data: bytes) -> ExpectedCiphertext:
    return ExpectedCiphertext(size=len(data), digest=digest_of("blake3", data))


def _client(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(transport=handler)


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "streamed"])
def test_a_download_asks_for_the_bytes_as_stored(data: bytes) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Accept-Encoding"))
        return httpx.Response(200, content=data)

    with (
        _client(httpx.MockTransport(handler)) as http,
        Download(http, URL, None, expected=_expected(data)) as download,
    ):
        assert download.stream.read() == data
        download.verify()
    assert seen == [AS_STORED["Accept-Encoding"]] == ["identity"]


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "streamed"])
def test_an_encoded_body_is_refused_before_it_is_inflated(data: bytes) -> None:
    bomb = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros in about 64 KiB

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})

    with (
        _client(httpx.MockTransport(handler)) as http,
        pytest.raises(TransferError, match="gzip"),
        Download(http, URL, None, expected=_expected(data)) as download,
    ):
        download.stream.read()
        download.verify()


@pytest.mark.parametrize(("declared", "cause"), [(1001, "more bytes"), (999, "fewer bytes")])
def test_a_declared_size_other_than_the_committed_one_is_refused(declared: int, cause: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=SMALL[: min(declared, len(SMALL))] + b"x" * max(0, declared - len(SMALL)),
        )

    with (
        _client(httpx.MockTransport(handler)) as http,
        pytest.raises(IntegrityError) as failed,
        Download(http, URL, None, expected=_expected(SMALL)) as download,
    ):
        download.stream.read()
        download.verify()
    assert cause in str(failed.value.__cause__)


def test_a_range_read_stops_at_the_range_length() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept-Encoding"] == "identity"
        assert request.headers["Range"] == "bytes=10-19"
        return httpx.Response(206, content=b"r" * (8 << 20))

    with (
        _client(httpx.MockTransport(handler)) as http,
        pytest.raises(TransferError, match="more than the range"),
    ):
        read_range(http, URL, 10, 20)


def test_a_range_read_returns_the_range() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(206, content=b"0123456789")

    with _client(httpx.MockTransport(handler)) as http:
        assert read_range(http, URL, 10, 20) == b"0123456789"


def test_an_encoded_range_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            206, content=gzip.compress(b"0123456789"), headers={"Content-Encoding": "gzip"}
        )

    with _client(httpx.MockTransport(handler)) as http, pytest.raises(TransferError, match="gzip"):
        read_range(http, URL, 10, 20)
