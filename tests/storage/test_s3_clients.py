"""The S3 store's two clients (decision 0001): minio-py for the per-record calls, boto3 for
size-bound upload URLs and multipart control, one set of credentials for both; and what the
store says when S3 is missing, unreachable or refuses."""

from __future__ import annotations

import socket
from pathlib import Path

import boto3
import httpx
import pytest

from tests.servers import S3Server
from tests.storage.sigv4 import signature_holds
from vault.storage import BackendError, ObjectNotFound, new_object_name
from vault.storage.s3 import S3Store

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_both_clients_use_the_sessions_credentials(s3_server: S3Server) -> None:
    """An upload URL (boto3) and a download URL (minio-py) from one store reach the same
    object, and the store's own HEAD and DELETE (minio-py) see it."""
    store = s3_server.with_new_bucket().store()
    name = new_object_name()
    assert httpx.put(store.presign_put(name, size=5, expires_s=60), content=b"bytes").is_success
    assert store.stat(name).size == 5
    assert httpx.get(store.presign_get(name, expires_s=60)).content == b"bytes"
    assert list(store.list_names()) == [name]
    store.delete(name)
    with pytest.raises(ObjectNotFound):
        store.stat(name)


def test_a_download_url_is_signed_with_the_sessions_secret(s3_server: S3Server) -> None:
    """moto takes any signature, so the URL is checked the way S3 checks it (tests/storage/
    sigv4.py): it holds with the session's secret and not with another."""
    server = s3_server.with_new_bucket()
    url = server.store().presign_get(new_object_name(), expires_s=60)
    assert signature_holds(url, method="GET", headers={}, secret_key=server.secret_key)
    assert not signature_holds(url, method="GET", headers={}, secret_key="not-the-secret")
    assert not signature_holds(url, method="PUT", headers={}, secret_key=server.secret_key)


def test_an_unreachable_endpoint_is_a_backend_error(s3_server: S3Server) -> None:
    store = S3Store.connect(
        "carevault",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        session=s3_server.session(),
    )
    with pytest.raises(BackendError, match="could not be reached"):
        store.stat(new_object_name())
    with pytest.raises(BackendError, match="could not be reached"):
        list(store.list_names())


def test_no_credentials_anywhere_is_a_backend_error_that_says_so(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3Store.connect(
        s3_server.bucket,
        endpoint_url=s3_server.endpoint_url,
        session=boto3.Session(region_name=s3_server.region),
    )
    with pytest.raises(BackendError, match="no AWS credentials"):
        store.stat(new_object_name())


@pytest.mark.parametrize(
    "endpoint_url",
    ["127.0.0.1:9000", "ftp://127.0.0.1:9000", "http://127.0.0.1:9000/some/path"],
)
def test_an_endpoint_that_is_not_a_scheme_and_host_is_refused(
    s3_server: S3Server, endpoint_url: str
) -> None:
    with pytest.raises(ValueError, match="scheme and a host"):
        S3Store.connect("carevault", endpoint_url=endpoint_url, session=s3_server.session())
