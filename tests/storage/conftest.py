"""Every blob store under the same contract tests, each with the client's side of its URLs."""

from __future__ import annotations

import hashlib
import io
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from keyservice.localblobs import BlobServer
from tests.servers import S3Server
from vault.storage import BlobStore, LocalDirectoryStore, MemoryStore, TokenSigner

TOKEN_KEY = b"k" * 32


class Client(Protocol):
    """What a Carevault client does with a URL the key service gave it."""

    def put(self, url: str, data: bytes) -> str: ...
    def get(self, url: str) -> bytes: ...


class HttpClient:
    """A real client: httpx against a real server."""

    def put(self, url: str, data: bytes) -> str:
        response = httpx.put(url, content=data, timeout=60)
        response.raise_for_status()
        return response.headers["ETag"]

    def get(self, url: str) -> bytes:
        response = httpx.get(url, timeout=60)
        response.raise_for_status()
        return response.content


class LocalClient:
    """The client's request as the key service's /v1/blobs/{token} route would handle it."""

    def __init__(self, store: LocalDirectoryStore) -> None:
        self.server = BlobServer(store, TokenSigner(TOKEN_KEY))

    def _token(self, url: str) -> str:
        prefix = "http://keyservice.test/v1/blobs/"
        assert url.startswith(prefix)
        return url.removeprefix(prefix)

    def put(self, url: str, data: bytes) -> str:
        return self.server.receive(self._token(url), io.BytesIO(data), now=time.time())

    def get(self, url: str) -> bytes:
        stream, size = self.server.send(self._token(url), now=time.time())
        with stream:
            data = stream.read()
        assert len(data) == size
        return data


class MemoryClient:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def put(self, url: str, data: bytes) -> str:
        return self.store.upload_to(url, data)

    def get(self, url: str) -> bytes:
        return self.store.download_from(url)


@dataclass
class Backend:
    name: str
    store: BlobStore
    client: Client


@pytest.fixture(
    params=[
        "memory",
        "local",
        pytest.param("s3", marks=pytest.mark.integration),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        memory = MemoryStore()
        yield Backend("memory", memory, MemoryClient(memory))
    elif request.param == "local":
        local = LocalDirectoryStore(
            tmp_path / "blobs", base_url="http://keyservice.test", token_key=TOKEN_KEY
        )
        yield Backend("local", local, LocalClient(local))
    else:
        server: S3Server = request.getfixturevalue("s3_server").with_new_bucket()
        yield Backend("s3", server.store(), HttpClient())


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def random_bytes(size: int) -> bytes:
    return secrets.token_bytes(size)
