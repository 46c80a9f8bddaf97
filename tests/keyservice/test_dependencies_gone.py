"""Issue 16, "Bad input": a database or a KMS that goes away while the service runs. A request
that needs it is answered 503 problem+json with Retry-After, saying which part cannot be
reached and nothing of its internals; no key leaves. Each part is taken away for real (a
PostgreSQL or a moto server this test started is stopped), and the database brought back."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.keyservice.helpers import (
    assigned_staff,
    bootstrap_admin,
    ok,
    put_record,
    release,
)
from tests.servers import (
    KeyService,
    KeyServiceFactory,
    ManagedProcess,
    PostgresServer,
    S3Server,
    embedded_env,
    free_port,
    make_temp_dir,
    postgres_os_user,
    start_postgres,
    start_process,
    start_s3_server,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
DATABASE_GONE = "the database cannot be reached; try again shortly"


def _start(factory: KeyServiceFactory, **settings: str) -> KeyService:
    port = free_port()
    data_dir = make_temp_dir("gone-")
    return factory.start({**embedded_env(data_dir, port=port), **settings}, port=port)


@pytest.fixture
def own_postgres() -> Iterator[tuple[Path, list[ManagedProcess], PostgresServer]]:
    base_dir = make_temp_dir("gone-postgres-")
    proc, server = start_postgres(base_dir)
    procs = [proc]
    try:
        yield base_dir, procs, server
    finally:
        for each in procs:
            each.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture
def own_moto() -> Iterator[tuple[ManagedProcess, S3Server]]:
    log_dir = make_temp_dir("gone-moto-")
    proc, server = start_s3_server(log_dir)
    try:
        yield proc, server
    finally:
        proc.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


def _restart_postgres(
    base_dir: Path, stopped: ManagedProcess, server: PostgresServer
) -> ManagedProcess:
    """The same cluster started again, on the same port, with the same command."""
    proc = start_process(
        "postgres",
        [str(arg) for arg in stopped.popen.args],  # type: ignore[union-attr]
        log_dir=base_dir,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TZ": "UTC"},
        run_as=postgres_os_user(),
        stop_signal=signal.SIGINT,
    )

    def probe() -> bool:
        try:
            with psycopg.connect(server.conninfo, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    wait_until_ready(proc, probe)
    return proc


def _unavailable(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert int(answer.headers["retry-after"]) > 0
    assert "sealed_key" not in answer.text
    assert "ephemeral_public" not in answer.text
    body: dict[str, Any] = answer.json()
    assert body["status"] == 503
    return body


def _ask_release(
    device: Any, record_id: str, version: int, *, request_id: str | None = None
) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id else {}
    with device.client() as http:
        return http.post(
            "/v1/keys/release",
            json={"items": [{"record_id": record_id, "version": version}]},
            headers=headers,
        )


def _ask_write(device: Any, child: str) -> httpx.Response:
    with device.client() as http:
        return http.post(
            "/v1/records",
            json={"child_ids": [child], "category": "observation", "ciphertext_size": 4},
        )


def test_requests_that_need_the_database_answer_503_until_it_is_back(
    keyservice_factory: KeyServiceFactory,
    own_postgres: tuple[Path, list[ManagedProcess], PostgresServer],
) -> None:
    base_dir, procs, postgres = own_postgres
    service = _start(keyservice_factory, CAREVAULT_DATABASE_URL=postgres.url)
    educator, child = assigned_staff(service, bootstrap_admin(service))
    stored = put_record(educator, child_ids=[child])
    procs[0].stop()

    for answer in (
        _ask_release(educator, stored.record_id, stored.version, request_id="dbgone-000001"),
        _ask_write(educator, child),
    ):
        body = _unavailable(answer)
        assert body["detail"] == DATABASE_GONE
        # Nothing of the database's internals: no driver, address or SQL.
        for internal in (str(postgres.port), "psycopg", "OperationalError", "SELECT"):
            assert internal not in answer.text
    # Logged with the request's id, so an operator can match the answer to its cause.
    logged = [
        line
        for line in service.process.log_path.read_text().splitlines()
        if "dbgone-000001" in line
    ]
    assert any("database cannot be reached" in line for line in logged), logged

    procs.append(_restart_postgres(base_dir, procs[0], postgres))
    _, results = release(educator, [(stored.record_id, stored.version)])
    item = results[(stored.record_id, stored.version)]
    assert item["status"] == "granted", item
    ok(_ask_write(educator, child))


def test_a_release_while_the_kms_is_gone_answers_503_and_no_key(
    keyservice_factory: KeyServiceFactory, own_moto: tuple[ManagedProcess, S3Server]
) -> None:
    proc, kms = own_moto
    service = _start(
        keyservice_factory,
        CAREVAULT_CHILD_KEY_CACHE_SECONDS="0",  # every release unwraps its child key
        **kms.kms_env(kms.new_kms_key()),
    )
    educator, child = assigned_staff(service, bootstrap_admin(service))
    stored = put_record(educator, child_ids=[child])
    proc.stop()

    answer = _ask_release(educator, stored.record_id, stored.version)
    body = _unavailable(answer)
    assert body["detail"] == "the root key provider cannot be reached; try again shortly"
    assert kms.endpoint_url.split("//")[1] not in answer.text
