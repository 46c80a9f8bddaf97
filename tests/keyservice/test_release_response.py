"""The release response is written as JSON text directly (keyservice/api/release.py): it must
be the JSON a dict encoder would give, for granted and denied items, with and without the
optional fields, and escape what comes from elsewhere (download URLs)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any, cast

from keyservice.api.release import _Prepared, _response
from keyservice.api.schemas import ReleaseRequest

GRANTED, WITHOUT_METADATA, DENIED = "a1" * 16, "b2" * 16, "c3" * 16
CHILDREN = ["0f" * 16, "1e" * 16]


class _Blobs:
    def presign_get(self, name: str, *, expires_s: int) -> str:
        return f'https://store.example/{name}?sig="q\\u00e9"&é'


def _prepared(include_urls: bool) -> _Prepared:
    body = ReleaseRequest.model_validate(
        {
            "items": [
                {"record_id": GRANTED, "version": 2},
                {"record_id": DENIED, "version": 1},
                {"record_id": WITHOUT_METADATA, "version": 1},
            ],
            "include_urls": include_urls,
        }
    )

    def row(name: str, metadata: bytes | None) -> Any:
        return SimpleNamespace(
            category="safeguarding",
            ciphertext_size=123,
            ciphertext_sha256=b"\xff" * 32,
            encrypted_metadata=metadata,
            object_name=name,
        )

    return _Prepared(
        caller=cast(Any, None),
        body=body,
        rows={(GRANTED, 2): row("obj1", b"\x00meta"), (WITHOUT_METADATA, 1): row("obj2", None)},
        children={GRANTED: CHILDREN, WITHOUT_METADATA: CHILDREN[:1]},
        sealed={(GRANTED, 2): b"\x01" * 60, (WITHOUT_METADATA, 1): b"\x02" * 60},
        ephemeral_public=b"\x03" * 32,
        write=cast(Any, None),
        urls={
            (GRANTED, 2): _Blobs().presign_get("obj1", expires_s=0),
            (WITHOUT_METADATA, 1): _Blobs().presign_get("obj2", expires_s=0),
        }
        if include_urls
        else {},
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _expected(include_urls: bool) -> dict[str, Any]:
    def granted(rid: str, version: int, children: list[str], sealed: bytes) -> dict[str, Any]:
        return {
            "record_id": rid,
            "version": version,
            "status": "granted",
            "attributes": {
                "record_id": rid,
                "version": version,
                "child_ids": children,
                "category": "safeguarding",
            },
            "sealed_key": _b64(sealed),
            "ciphertext_size": 123,
            "ciphertext_sha256": _b64(b"\xff" * 32),
        }

    first = granted(GRANTED, 2, CHILDREN, b"\x01" * 60)
    first["encrypted_metadata"] = _b64(b"\x00meta")
    third = granted(WITHOUT_METADATA, 1, CHILDREN[:1], b"\x02" * 60)
    if include_urls:
        first["download_url"] = _Blobs().presign_get("obj1", expires_s=0)
        third["download_url"] = _Blobs().presign_get("obj2", expires_s=0)
    denied = {"record_id": DENIED, "version": 1, "status": "denied", "code": "unavailable"}
    return {"ephemeral_public": _b64(b"\x03" * 32), "results": [first, denied, third]}


def test_the_response_text_is_the_json_of_the_results() -> None:
    for include_urls in (False, True):
        response = _response(_prepared(include_urls))
        assert response.media_type == "application/json"
        assert json.loads(response.body) == _expected(include_urls)
        response.body.decode("ascii")  # escaped: nothing outside ASCII
