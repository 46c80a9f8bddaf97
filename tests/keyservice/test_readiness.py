"""``/healthz`` answers while the process runs; ``/readyz`` answers 200 only while the database,
the blob store and the root key each answer, else 503 problem+json naming which (and its
setting). Each part is taken away for real: a PostgreSQL or a moto server this test started is
stopped, the root key file is moved away."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import (
    KeyService,
    KeyServiceFactory,
    ManagedProcess,
    PostgresServer,
    S3Server,
    embedded_env,
    free_port,
    make_temp_dir,
    start_postgres,
    start_s3_server,
)

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"


def _ready(service: KeyService) -> httpx.Response:
    return httpx.get(f"{service.base_url}/readyz", timeout=30.0)


def _unready(service: KeyService) -> dict[str, Any]:
    answer = _ready(service)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = answer.json()
    assert body["status"] == 503
    return body


def _start(factory: KeyServiceFactory, **settings: str) -> KeyService:
    port = free_port()
    data_dir = make_temp_dir("readiness-")
    return factory.start({**embedded_env(data_dir, port=port), **settings}, port=port)


@pytest.fixture
def own_postgres() -> Iterator[tuple[ManagedProcess, PostgresServer]]:
    base_dir = make_temp_dir("readiness-postgres-")
    proc, server = start_postgres(base_dir)
    try:
        yield proc, server
    finally:
        proc.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture
def own_moto() -> Iterator[tuple[ManagedProcess, S3Server]]:
    log_dir = make_temp_dir("readiness-moto-")
    proc, server = start_s3_server(log_dir)
    try:
        yield proc, server
    finally:
        proc.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


def test_alive_and_ready(keyservice_factory: KeyServiceFactory) -> None:
    service = _start(keyservice_factory)
    alive = httpx.get(f"{service.base_url}/healthz", headers={"x-request-id": "probe-000042"})
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}
    assert alive.headers["x-request-id"] == "probe-000042"
    ready = _ready(service)
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "blob_store": "ok", "root_key": "ok"},
    }


def test_not_ready_without_the_database(
    keyservice_factory: KeyServiceFactory, own_postgres: tuple[ManagedProcess, PostgresServer]
) -> None:
    proc, postgres = own_postgres
    service = _start(keyservice_factory, CAREVAULT_DATABASE_URL=postgres.url)
    assert _ready(service).status_code == 200
    proc.stop()
    body = _unready(service)
    assert body["detail"] == "not ready: the database cannot be reached"
    assert body["unready"] == [{"part": "database", "setting": "CAREVAULT_DATABASE_URL"}]
    assert body["checks"] == {"database": "failed", "blob_store": "ok", "root_key": "ok"}
    # Alive all the same: a restart would not bring the database back.
    assert httpx.get(f"{service.base_url}/healthz").status_code == 200


def test_not_ready_without_the_blob_store(
    keyservice_factory: KeyServiceFactory, own_moto: tuple[ManagedProcess, S3Server]
) -> None:
    proc, s3 = own_moto
    service = _start(
        keyservice_factory,
        CAREVAULT_BLOB_STORE=f"s3://{s3.bucket}",
        CAREVAULT_S3_ENDPOINT_URL=s3.endpoint_url,
        **s3.env(),
    )
    assert _ready(service).status_code == 200
    proc.stop()
    body = _unready(service)
    assert body["unready"] == [{"part": "blob_store", "setting": "CAREVAULT_BLOB_STORE"}]
    assert body["checks"] == {"database": "ok", "blob_store": "failed", "root_key": "ok"}
    # The reason (an address, an error) is logged, not answered to anyone who asks.
    assert s3.endpoint_url.split("//")[1] not in str(body)
    assert '"part": "blob_store"' in service.log_tail()


def test_not_ready_while_the_root_key_file_cannot_be_read(
    keyservice_factory: KeyServiceFactory,
) -> None:
    service = _start(keyservice_factory)
    key_file = Path(service.env["CAREVAULT_DATA_DIR"]) / "root.key"
    moved = key_file.with_name("root.key.moved")
    assert _ready(service).status_code == 200
    key_file.rename(moved)
    try:
        body = _unready(service)
    finally:
        moved.rename(key_file)
    assert body["unready"] == [{"part": "root_key", "setting": "CAREVAULT_ROOT_KEY"}]
    assert body["checks"] == {"database": "ok", "blob_store": "ok", "root_key": "failed"}
    assert _ready(service).status_code == 200


def test_not_ready_without_the_kms(
    keyservice_factory: KeyServiceFactory, own_moto: tuple[ManagedProcess, S3Server]
) -> None:
    proc, kms = own_moto
    service = _start(keyservice_factory, **kms.kms_env(kms.new_kms_key()))
    assert _ready(service).status_code == 200
    proc.stop()
    body = _unready(service)
    assert body["unready"] == [{"part": "root_key", "setting": "CAREVAULT_ROOT_KEY"}]
    assert body["checks"] == {"database": "ok", "blob_store": "ok", "root_key": "failed"}
