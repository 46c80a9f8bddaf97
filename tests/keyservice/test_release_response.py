"""The release response is written as JSON text directly (``keyservice.api.release.
release_json``): it must be the JSON a dict encoder would give, for granted and denied items,
with and without the optional fields, escape what comes from elsewhere (download URLs), and be
exactly what its documented schema, the ``ReleaseResponse`` model, gives for it."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

from keyservice.api.record_models import ReleaseResponse
from keyservice.api.release import release_json
from keyservice.catalog.release import Asked, Pair, Release, VersionRow

GRANTED, WITHOUT_METADATA, DENIED = "a1" * 16, "b2" * 16, "c3" * 16
CHILDREN = ["0f" * 16, "1e" * 16]
# The last two ask for the latest version: the first is given version 1, the second denied.
ASKED: list[Asked] = [(GRANTED, 2), (DENIED, 1), (WITHOUT_METADATA, None), (DENIED, None)]


class _Blobs:
    def presign_get(self, name: str, *, expires_s: int) -> str:
        return f'https://store.example/{name}?sig="q\\u00e9"&é'


def _release() -> Release:
    def row(rid: str, version: int, metadata: bytes | None) -> VersionRow:
        return VersionRow(
            record_id=rid,
            version=version,
            object_name=f"obj-{rid}",
            encrypted_metadata=metadata,
            ciphertext_size=123,
            ciphertext_sha256=b"\xff" * 32,
            state="committed",
            category="safeguarding",
            withheld_from_guardians=False,
            ciphertext_digest_alg="blake3",
        )

    return Release(
        resolved={
            (GRANTED, 2): (GRANTED, 2),
            (WITHOUT_METADATA, None): (WITHOUT_METADATA, 1),
            # Resolved but not sealed: denied (the policy said no).
            (DENIED, 1): (DENIED, 1),
        },
        sealed={(GRANTED, 2): b"\x01" * 60, (WITHOUT_METADATA, 1): b"\x02" * 60},
        versions={
            (GRANTED, 2): row(GRANTED, 2, b"\x00meta"),
            (WITHOUT_METADATA, 1): row(WITHOUT_METADATA, 1, None),
            (DENIED, 1): row(DENIED, 1, None),
        },
        children={GRANTED: CHILDREN, WITHOUT_METADATA: CHILDREN[:1], DENIED: CHILDREN},
        ephemeral_public=b"\x03" * 32,
        event=cast(Any, None),
        disclosures=cast(Any, None),
    )


def _urls(include_urls: bool) -> dict[Pair, str]:
    if not include_urls:
        return {}
    return {
        (GRANTED, 2): _Blobs().presign_get(f"obj-{GRANTED}", expires_s=0),
        (WITHOUT_METADATA, 1): _Blobs().presign_get(f"obj-{WITHOUT_METADATA}", expires_s=0),
    }


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
            "ciphertext_digest_alg": "blake3",
            "ciphertext_digest": _b64(b"\xff" * 32),
        }

    first = granted(GRANTED, 2, CHILDREN, b"\x01" * 60)
    first["encrypted_metadata"] = _b64(b"\x00meta")
    third = granted(WITHOUT_METADATA, 1, CHILDREN[:1], b"\x02" * 60)
    if include_urls:
        first["download_url"] = _Blobs().presign_get(f"obj-{GRANTED}", expires_s=0)
        third["download_url"] = _Blobs().presign_get(f"obj-{WITHOUT_METADATA}", expires_s=0)
    denied = {"record_id": DENIED, "version": 1, "status": "denied", "code": "unavailable"}
    # A denied item that named no version says so, and nothing else.
    denied_latest = {
        "record_id": DENIED,
        "version": None,
        "status": "denied",
        "code": "unavailable",
    }
    return {
        "ephemeral_public": _b64(b"\x03" * 32),
        "results": [first, denied, third, denied_latest],
    }


def test_the_response_text_is_the_json_of_the_results() -> None:
    for include_urls in (False, True):
        text = release_json(ASKED, _release(), _urls(include_urls))
        assert json.loads(text) == _expected(include_urls)
        text.decode("ascii")  # escaped: nothing outside ASCII


def test_the_response_text_is_what_its_model_gives() -> None:
    """Every field the text writes is one of the model's, of the model's type, and the model
    gives back the same JSON (fields it leaves out are left out of the text too)."""
    for include_urls in (False, True):
        text = release_json(ASKED, _release(), _urls(include_urls))
        model = ReleaseResponse.model_validate_json(text)
        assert model.model_dump(mode="json", exclude_unset=True) == json.loads(text)


def test_an_inline_ciphertext_is_written_as_its_model_gives_and_only_for_granted_items() -> None:
    """Decision 0030: a small granted version's ``ciphertext`` (base64url), nowhere else."""
    inline = {(GRANTED, 2): b"\x00\xffsmall ciphertext"}
    text = release_json(ASKED, _release(), _urls(True), inline)
    model = ReleaseResponse.model_validate_json(text)
    assert model.model_dump(mode="json", exclude_unset=True) == json.loads(text)
    results = json.loads(text)["results"]
    assert [r.get("ciphertext") for r in results] == [_b64(inline[(GRANTED, 2)]), None, None, None]
