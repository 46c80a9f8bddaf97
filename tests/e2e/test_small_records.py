"""Records either side of the client's small-record threshold (vault/client/blobs.py,
``SMALL_CIPHERTEXT_SIZE``) through a real key service and real storage (both flavours): the
in-memory path must commit and read back like the streamed one, and refuse the same."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.e2e.world import World
from tests.sdk.test_small_records import AT_THRESHOLD, OVER_THRESHOLD
from vault.format import IntegrityError

pytestmark = pytest.mark.integration

SIZES = pytest.mark.parametrize("size", [AT_THRESHOLD, OVER_THRESHOLD], ids=["small", "streamed"])


@SIZES
def test_record_round_trips(world: World, tmp_path: Path, size: int) -> None:
    amira = world.people["amira"]
    data = os.urandom(size)
    ref = amira.put(child_ids=[world.children["ava"]], category="photo", stream=io.BytesIO(data))
    target = tmp_path / "photo.bin"
    amira.get(ref.record_id, dst=target)
    assert target.read_bytes() == data


@SIZES
def test_altered_blob_fails_and_writes_nothing(world: World, tmp_path: Path, size: int) -> None:
    amira = world.people["amira"]
    before = world.storage.objects()
    ref = amira.put(
        child_ids=[world.children["noah"]], category="photo", stream=io.BytesIO(os.urandom(size))
    )
    (name,) = (k for k in world.storage.objects() if k not in before)
    world.storage.flip_byte(name, size // 2)
    with pytest.raises(IntegrityError):
        amira.get(ref.record_id, dst=tmp_path / "photo.bin")
    assert list(tmp_path.iterdir()) == [], "no partial or temporary file may be left"
