"""A download is checked against the committed digest in the algorithm the version names
(docs/FORMAT.md, "Ciphertext digest"; decision 0022): a release that names another
algorithm than the one the digest was made with is refused, a version committed with
SHA-256 is still read and checked with SHA-256, and ``check_ciphertext`` is the one check
for a ciphertext held whole."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import vault.format as fmt
from tests.sdk.conftest import Forward, Office, relay, substitute_ciphertext
from vault.client import Client
from vault.client.blobs import SMALL_CIPHERTEXT_SIZE, check_ciphertext
from vault.client.models import ExpectedCiphertext
from vault.format import CiphertextDigest, IntegrityError, digest_of

SIZES = pytest.mark.parametrize(
    "size", [100_000, SMALL_CIPHERTEXT_SIZE + 1], ids=["small", "streamed"]
)


def _release_changed(change: Callable[[dict[str, object]], None]) -> httpx.MockTransport:
    def answer(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = forward(request)
        if request.url.path != "/v1/keys/release":
            return response
        body = json.loads(response.content)
        for result in body["results"]:
            change(result)
        return httpx.Response(response.status_code, json=body)

    return relay(answer)


def _put(client: Client, child: str, data: bytes) -> str:
    return client.put(child_ids=[child], category="photo", stream=io.BytesIO(data)).record_id


@SIZES
def test_a_release_naming_another_algorithm_is_refused_and_leaves_nothing(
    client: Client, child: str, tmp_path: Path, size: int
) -> None:
    # The committed BLAKE3 digest, handed out as if it were a SHA-256: the bytes are the
    # committed ones, but they are checked in the algorithm named, and do not match.
    record_id = _put(client, child, os.urandom(size))
    misled = Client(
        client.identity,
        transport=_release_changed(lambda result: result.update(ciphertext_digest_alg="sha256")),
    )
    with pytest.raises(IntegrityError) as caught:
        misled.get(record_id, dst=tmp_path / "photo.bin")
    assert "sha256 digest differs" in str(caught.value.__cause__)
    assert list(tmp_path.iterdir()) == []
    client.get(record_id, dst=tmp_path / "photo.bin")  # the true answer reads it


@SIZES
def test_a_version_committed_with_sha256_is_read_and_checked_with_sha256(
    office: Office,
    client: Client,
    child: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    # As a client older than BLAKE3 committed: the digest is the ciphertext's SHA-256.
    monkeypatch.setattr(fmt, "encrypt", functools.partial(fmt.encrypt, digest_alg="sha256"))
    data = os.urandom(size)
    ref, stored = office.stored(
        lambda: client.put(child_ids=[child], category="photo", stream=io.BytesIO(data))
    )
    monkeypatch.undo()
    released = client._release_one(ref.record_id, 1, include_url=True)
    assert released.ciphertext is not None
    assert released.ciphertext.digest == CiphertextDigest(
        "sha256", hashlib.sha256(stored.read_bytes()).digest()
    )
    client.get(ref.record_id, dst=tmp_path / "photo.bin")
    assert (tmp_path / "photo.bin").read_bytes() == data
    substitute = substitute_ciphertext(
        client, ref.record_id, os.urandom(size), content_type="application/octet-stream"
    )
    stored.write_bytes(substitute)
    with pytest.raises(IntegrityError) as caught:
        client.get(ref.record_id, dst=tmp_path / "again.bin")
    assert "sha256 digest differs" in str(caught.value.__cause__)
    assert not (tmp_path / "again.bin").exists()


@pytest.mark.parametrize("alg", fmt.DIGEST_ALGS)
def test_check_ciphertext_takes_only_the_committed_bytes_in_their_algorithm(alg: str) -> None:
    data = os.urandom(5000)
    expected = ExpectedCiphertext(size=len(data), digest=digest_of(alg, data))  # type: ignore[arg-type]
    check_ciphertext(data, expected)
    other = "sha256" if alg == "blake3" else "blake3"
    for wrong in (
        ExpectedCiphertext(size=len(data), digest=CiphertextDigest(other, expected.digest.value)),  # type: ignore[arg-type]
        ExpectedCiphertext(size=len(data) + 1, digest=expected.digest),
    ):
        with pytest.raises(IntegrityError):
            check_ciphertext(data, wrong)
    with pytest.raises(IntegrityError):
        check_ciphertext(data[:-1] + bytes([data[-1] ^ 1]), expected)
