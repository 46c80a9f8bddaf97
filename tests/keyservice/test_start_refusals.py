"""``carevault-keyservice serve`` refuses to start, before anything listens, with exit status 78
and ONE line on stderr naming the variable and what to do: an unknown CAREVAULT_* variable, a
malformed URL or value, a database that does not answer, a bucket that does not exist, a root
key that cannot be reached. Each case starts the real service process (tests/launcher.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keyservice.ops.startup import EX_CONFIG
from tests.servers import (
    LOOPBACK,
    PostgresServer,
    S3Server,
    embedded_env,
    free_port,
    make_temp_dir,
    run_keyservice_command,
)

pytestmark = pytest.mark.integration

Env = Callable[[Path, S3Server, PostgresServer], dict[str, str]]
PASSWORD = "pw-4417-never-shown"


def _unknown(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    return {"CAREVAULT_MAX_UPLOAD_BYTE": "1000"}


def _malformed_url(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    return {"CAREVAULT_PUBLIC_URL": "vault.example.org:8800"}


def _malformed_value(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    return {"CAREVAULT_MAX_UPLOAD_BYTES": "2GiB"}


def _database_away(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    url = f"postgresql+psycopg://carevault:{PASSWORD}@{LOOPBACK}:{free_port()}/carevault"
    return {"CAREVAULT_DATABASE_URL": url}


def _no_database(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    return {"CAREVAULT_DATABASE_URL": pg.url.rsplit("/", 1)[0] + "/no_such_database"}


def _no_bucket(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    return {
        "CAREVAULT_BLOB_STORE": "s3://no-such-bucket-carevault",
        "CAREVAULT_S3_ENDPOINT_URL": s3.endpoint_url,
        **s3.env(),
    }


def _s3_away(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    # The client retries (and would log each retry) before it gives up: still one line.
    return {
        "CAREVAULT_BLOB_STORE": f"s3://{s3.bucket}",
        "CAREVAULT_S3_ENDPOINT_URL": f"http://{LOOPBACK}:{free_port()}",
        **s3.env(),
    }


def _no_checkpoint_bucket(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    return {
        "CAREVAULT_CHECKPOINT_STORE": "s3://no-such-checkpoints",
        "CAREVAULT_S3_ENDPOINT_URL": s3.endpoint_url,
        **s3.env(),
    }


def _kms_away(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    return {
        **s3.kms_env(s3.new_kms_key()),
        "CAREVAULT_KMS_ENDPOINT_URL": f"http://{LOOPBACK}:{free_port()}",
    }


def _root_key_file_unreadable(data_dir: Path, s3: S3Server, pg: PostgresServer) -> dict[str, str]:
    # A directory where the key file should be: no account can read it as a file.
    (data_dir / "elsewhere.key").mkdir(mode=0o700)
    return {"CAREVAULT_ROOT_KEY": f"file:{data_dir / 'elsewhere.key'}"}


CASES: dict[str, tuple[Env, str, str]] = {
    "unknown-variable": (
        _unknown,
        "CAREVAULT_MAX_UPLOAD_BYTE",
        "did you mean CAREVAULT_MAX_UPLOAD_BYTES? remove it or fix its name",
    ),
    "malformed-url": (_malformed_url, "CAREVAULT_PUBLIC_URL", "use the http(s)://HOST[:PORT]"),
    "malformed-value": (_malformed_value, "CAREVAULT_MAX_UPLOAD_BYTES", "valid integer"),
    "database-away": (
        _database_away,
        "CAREVAULT_DATABASE_URL",
        "the database cannot be reached (",
    ),
    "no-database": (_no_database, "CAREVAULT_DATABASE_URL", "start the database or fix the URL"),
    "no-bucket": (_no_bucket, "CAREVAULT_BLOB_STORE", "create the bucket (with versioning)"),
    "no-checkpoint-bucket": (
        _no_checkpoint_bucket,
        "CAREVAULT_CHECKPOINT_STORE",
        "the checkpoint store at CAREVAULT_S3_ENDPOINT_URL=",
    ),
    "kms-away": (_kms_away, "CAREVAULT_ROOT_KEY", "the KMS cannot be reached"),
    "root-key-file-unreadable": (
        _root_key_file_unreadable,
        "CAREVAULT_ROOT_KEY",
        "is not a regular file; make the key file readable by the service",
    ),
    "s3-away": (
        _s3_away,
        "CAREVAULT_BLOB_STORE",
        "cannot be reached (S3 could not be reached); create the bucket",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_start_is_refused_in_one_line_naming_the_variable(
    case: str, s3_server: S3Server, postgres_server: PostgresServer
) -> None:
    make_env, variable, what = CASES[case]
    data_dir = make_temp_dir(f"refused-{case}-")
    port = free_port()
    env = {**embedded_env(data_dir, port=port), **make_env(data_dir, s3_server, postgres_server)}
    result = run_keyservice_command(
        env, "serve", "--host", LOOPBACK, "--port", str(port), check=False, timeout=90
    )
    assert result.returncode == EX_CONFIG, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"carevault-keyservice: {variable}"), lines[0]
    assert what in lines[0]
    assert PASSWORD not in result.stderr
    assert result.stdout == ""


def test_a_host_command_refuses_a_wrong_setting_the_same_way() -> None:
    data_dir = make_temp_dir("refused-host-")
    env = {**embedded_env(data_dir, port=free_port()), "CAREVAULT_REJECT_LIMIT": "none"}
    result = run_keyservice_command(env, "migrate", check=False)
    assert result.returncode == EX_CONFIG
    assert result.stderr.strip().splitlines() == [
        "carevault-keyservice: CAREVAULT_REJECT_LIMIT='none' is refused: input should be a "
        "valid integer, unable to parse string as an integer; fix or unset it (README.md lists "
        "every setting and its default)"
    ]
