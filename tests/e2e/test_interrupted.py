"""A client killed in the middle of an upload leaves no visible record; a retry succeeds."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import pytest

from tests.e2e.world import World
from tests.servers import kill_at_first_line
from vault.client import Client, save_identity

pytestmark = pytest.mark.integration

PASSPHRASE = "e2e passphrase"


def test_killed_upload_leaves_no_record_and_retry_succeeds(world: World, tmp_path: Path) -> None:
    code = world.code_for("eve", kind="staff", roles=("educator",))
    eve, identity = Client.enrol(world.service.base_url, code, "eve's laptop")
    noah = world.children["noah"]
    world.assign("eve", noah)
    key_file = tmp_path / "device.key"
    save_identity(
        key_file,
        identity,
        PASSPHRASE,
        opslimit=argon2id.OPSLIMIT_MIN,
        memlimit=argon2id.MEMLIMIT_MIN,
    )
    source = tmp_path / "big-observation.bin"
    source.write_bytes(os.urandom(24 * 1024 * 1024))
    listed_before = {r.record_id for r in eve.records(noah)}

    status = kill_at_first_line(
        [sys.executable, "-m", "tests.e2e.upload_child", str(key_file), noah, str(source)],
        b"STARTED\n",
        env={**os.environ, "CAREVAULT_PASSPHRASE": PASSPHRASE},
    )
    assert status == -signal.SIGKILL, "the upload must have been cut off mid-way"

    assert {r.record_id for r in eve.records(noah)} == listed_before

    ref = eve.put(child_ids=[noah], category="observation", path=source)
    after = {r.record_id for r in eve.records(noah)}
    assert after == listed_before | {ref.record_id}
    out = tmp_path / "back.bin"
    eve.get(ref.record_id, dst=out)
    assert out.read_bytes() == source.read_bytes()
    eve.close()
