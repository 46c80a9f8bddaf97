"""The session's servers are the real thing: real HTTP, real SQL, real processes that end."""

from __future__ import annotations

import secrets

import httpx
import psycopg
import pytest
import sqlalchemy

from deploy.topology import alive as pid_exists
from tests.servers import (
    KeyService,
    KeyServiceFactory,
    PostgresServer,
    S3Server,
    run_keyservice_command,
)

pytestmark = pytest.mark.integration


def test_s3_object_written_with_boto3_is_read_over_plain_http(s3_server: S3Server) -> None:
    client = s3_server.client()
    name = secrets.token_hex(16)
    body = secrets.token_bytes(4096)
    client.put_object(Bucket=s3_server.bucket, Key=name, Body=body)

    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": s3_server.bucket, "Key": name}, ExpiresIn=60
    )
    assert url.startswith(s3_server.endpoint_url)
    assert "X-Amz-Signature=" in url  # SigV4 query signing
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == body


def test_s3_bucket_is_fresh_for_the_session(s3_server: S3Server) -> None:
    names = {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    assert s3_server.bucket in names


def test_postgres_sql_round_trip_through_psycopg(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.conninfo) as conn:
        conn.execute("CREATE TEMPORARY TABLE t (id int primary key, note text)")
        conn.execute("INSERT INTO t VALUES (%s, %s)", (7, "seven"))
        row = conn.execute("SELECT note, current_database(), version() FROM t").fetchone()
    assert row is not None
    note, database, version = row
    assert note == "seven"
    assert database == postgres_server.dbname
    assert version.startswith("PostgreSQL")


def test_postgres_url_works_with_sqlalchemy(postgres_server: PostgresServer) -> None:
    engine = sqlalchemy.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 40 + 2")).scalar_one() == 42
    finally:
        engine.dispose()


def test_postgres_fresh_database_is_empty(postgres_server: PostgresServer) -> None:
    fresh = postgres_server.create_database()
    assert fresh.dbname != postgres_server.dbname
    with psycopg.connect(fresh.conninfo) as conn:
        count = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert count == (0,)


@pytest.mark.parametrize("flavour", ["keyservice_embedded", "keyservice_production"])
def test_keyservice_answers_over_http(flavour: str, request: pytest.FixtureRequest) -> None:
    service: KeyService = request.getfixturevalue(flavour)
    assert httpx.get(f"{service.base_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{service.base_url}/v1/noop").status_code == 200
    assert pid_exists(service.pid)


def test_production_keyservice_is_configured_for_postgres_and_s3(
    keyservice_production: KeyService, s3_server: S3Server
) -> None:
    env = keyservice_production.env
    assert env["CAREVAULT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["CAREVAULT_BLOB_STORE"].startswith("s3://")
    assert env["CAREVAULT_S3_ENDPOINT_URL"] == s3_server.endpoint_url


def test_stopped_keyservice_leaves_no_process(keyservice_factory: KeyServiceFactory) -> None:
    service = keyservice_factory(flavour="embedded")
    pid = service.pid
    assert pid_exists(pid)
    service.stop()
    assert not pid_exists(pid)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{service.base_url}/healthz", timeout=2.0)


def test_restart_keeps_port_and_data_dir(keyservice_factory: KeyServiceFactory) -> None:
    first = keyservice_factory(flavour="embedded")
    second = keyservice_factory.restart(first)
    try:
        assert not pid_exists(first.pid)
        assert second.base_url == first.base_url
        assert second.data_dir == first.data_dir
        assert httpx.get(f"{second.base_url}/healthz").status_code == 200
    finally:
        second.stop()


def test_keyservice_command_runs_with_the_service_env(keyservice_embedded: KeyService) -> None:
    result = run_keyservice_command(keyservice_embedded.env, "--help")
    assert "serve" in result.stdout
    failed = run_keyservice_command(keyservice_embedded.env, "no-such-command", check=False)
    assert failed.returncode != 0
