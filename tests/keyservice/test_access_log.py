"""Blob URL tokens never reach the access log (they are the authorisation itself)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from keyservice.app import create_app
from keyservice.settings import Settings

TOKEN = "eyJlIjoxNzAwMDAwMDAwfQ.c2VjcmV0LXRhZw"


def _access(path: str) -> None:
    # The call uvicorn makes for every response (uvicorn/protocols/http/*_impl.py).
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "PUT", path, "1.1", 200
    )


def test_the_app_redacts_blob_tokens_from_access_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_app(Settings.from_env({"CAREVAULT_DATA_DIR": str(tmp_path)}))
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    _access(f"/v1/blobs/{TOKEN}")
    _access(f"/v1/blobs/{TOKEN}?partNumber=2")
    _access("/v1/keys/release")
    lines = [record.getMessage() for record in caplog.records]
    assert all(TOKEN not in line for line in lines)
    assert lines == [
        '127.0.0.1:5000 - "PUT /v1/blobs/<token> HTTP/1.1" 200',
        '127.0.0.1:5000 - "PUT /v1/blobs/<token> HTTP/1.1" 200',
        '127.0.0.1:5000 - "PUT /v1/keys/release HTTP/1.1" 200',
    ]
