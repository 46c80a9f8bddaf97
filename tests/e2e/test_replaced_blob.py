"""A committed blob cannot be swapped through its upload URL (security review, finding 3).

The upload URL outlives the commit. The record's creator holds the record key, so it can
encrypt a different, well-formed ciphertext that the format alone would accept. On the local
store the second PUT is refused outright; on S3 it succeeds, and the download then fails on
the size and SHA-256 the key service checked at commit and hands out with the record key.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from tests.e2e.world import World
from tests.sdk.conftest import Forward, relay, substitute_ciphertext
from vault.client import Client
from vault.format import IntegrityError

pytestmark = pytest.mark.integration

ORIGINAL = b"ava settled well after lunch " * 40
SUBSTITUTE = b"ava had a very different day " * 40


def _uploading_client(world: World, name: str, seen: list[str]) -> Client:
    """The person's own device, remembering every upload URL the key service gave it: a small
    record's is issued at creation even though its commit carries the ciphertext instead
    (decision 0030), so it must be as harmless."""

    def remember(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = forward(request)
        if request.method == "POST" and request.url.path == "/v1/records":
            seen.append(response.json()["upload"]["url"])
        return response

    return Client(world.people[name].identity, transport=relay(remember))


def test_reupload_after_commit_is_refused_or_detected(world: World, tmp_path: Path) -> None:
    assert len(ORIGINAL) == len(SUBSTITUTE)
    urls: list[str] = []
    amira = _uploading_client(world, "amira", urls)
    try:
        ref = amira.put(
            child_ids=[world.children["ava"]],
            category="observation",
            stream=io.BytesIO(ORIGINAL),
            file_name="lunch.txt",
        )
        (upload_url,) = urls
        substitute = substitute_ciphertext(amira, ref.record_id, SUBSTITUTE)
        replaced = httpx.put(upload_url, content=substitute, timeout=30.0)
        target = tmp_path / "lunch.txt"
        if world.service.env["CAREVAULT_BLOB_STORE"].startswith("local:"):
            assert replaced.status_code == 409, replaced.text
            amira.get(ref.record_id, dst=target)
            assert target.read_bytes() == ORIGINAL
            return
        assert replaced.status_code == 200, "S3 accepts the PUT; the download must catch it"
        with pytest.raises(IntegrityError):
            amira.get(ref.record_id, dst=target)
        assert list(tmp_path.iterdir()) == [], "no partial or temporary file may be left"
    finally:
        amira.close()
