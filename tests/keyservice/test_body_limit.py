"""JSON request bodies are capped at 1 MiB: a 413 problem before the body is read or parsed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.servers import KeyService

pytestmark = pytest.mark.integration

LIMIT = 1024 * 1024


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


@pytest.mark.parametrize("path", ["/v1/enrol", "/v1/keys/release", "/v1/records"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    service: KeyService, path: str
) -> None:
    parsed = urlsplit(service.base_url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {50 * LIMIT}\r\n\r\n"
    )
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10.0) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(4096)
    assert answer.split(b" ", 2)[1] == b"413"
    assert b"application/problem+json" in answer


def test_a_chunked_body_over_the_limit_is_counted_and_refused(service: KeyService) -> None:
    answer = httpx.post(
        f"{service.base_url}/v1/enrol",
        content=_chunks(2 * LIMIT),
        headers={"Content-Type": "application/json"},
        timeout=30.0,
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_chunked_body_within_the_limit_reaches_validation(service: KeyService) -> None:
    answer = httpx.post(
        f"{service.base_url}/v1/enrol",
        content=_chunks(LIMIT),
        headers={"Content-Type": "application/json"},
        timeout=30.0,
    )
    assert answer.status_code == 422
