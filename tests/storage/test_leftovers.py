"""What a crash leaves in the local store, and its removal by a sweep (security review,
finding 9): a file being written when the process was killed, and an upload whose start was
cut off before its manifest. Objects and live uploads are never touched."""

from __future__ import annotations

import io
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.servers import kill_at_first_line
from vault.storage import MIN_PART_SIZE, LocalDirectoryStore, new_object_name

KEY = b"t" * 32
# Writes one MiB of an object, says so, and stalls there until it is killed.
_STALLED_WRITER = """
import sys, time
from pathlib import Path
from vault.storage import LocalDirectoryStore

class Stalls:
    sent = False

    def read(self, size=-1, /):
        if not self.sent:
            self.sent = True
            return b"x" * (1 << 20)
        print("WRITING", flush=True)
        time.sleep(120)
        return b""

store = LocalDirectoryStore(Path(sys.argv[1]), base_url="http://x", token_key=b"t" * 32)
store.put(sys.argv[2], Stalls())
"""


@pytest.fixture
def store(tmp_path: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(tmp_path / "blobs", base_url="http://x", token_key=KEY)


def _killed_mid_write(store: LocalDirectoryStore, name: str) -> None:
    kill_at_first_line([sys.executable, "-c", _STALLED_WRITER, str(store.root), name], b"WRITING\n")


def test_a_file_left_by_a_writer_killed_mid_write_is_removed(store: LocalDirectoryStore) -> None:
    kept = new_object_name()
    store.put(kept, io.BytesIO(b"an object"))
    before = datetime.now(UTC) - timedelta(seconds=2)
    name = new_object_name()
    _killed_mid_write(store, name)
    [left] = list((store.root / ".tmp").iterdir())
    assert left.stat().st_size == 1 << 20

    assert store.remove_stale_temporaries(modified_before=before) == 0
    assert left.exists()
    assert store.remove_stale_temporaries(modified_before=datetime.now(UTC) + timedelta(1)) == 1
    assert list((store.root / ".tmp").iterdir()) == []
    assert list(store.list_names()) == [kept]
    assert store.get(kept).read() == b"an object"


def test_an_upload_cut_off_before_its_manifest_is_removed(store: LocalDirectoryStore) -> None:
    live = store.start_multipart(new_object_name(), size=10, part_size=MIN_PART_SIZE, expires_s=60)
    cut_off = store.root / ".uploads" / new_object_name()
    cut_off.mkdir()
    (cut_off / "part-00001").write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(cut_off, (an_hour_ago, an_hour_ago))

    assert store.remove_stale_temporaries(modified_before=datetime.now(UTC)) == 1
    assert [p.name for p in (store.root / ".uploads").iterdir()] == [live.upload_id]
