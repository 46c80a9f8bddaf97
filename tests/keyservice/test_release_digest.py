"""Every granted release item names the committed ciphertext's size and SHA-256."""

from __future__ import annotations

import hashlib

import pytest

from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    assign,
    b64,
    create_child,
    put_record,
    release,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def test_granted_items_carry_the_committed_size_and_digest(
    service: KeyService, admin: Device
) -> None:
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    first = put_record(educator, child_ids=[child], ciphertext=b"first ciphertext")
    second = put_record(educator, child_ids=[child], ciphertext=bytes(range(256)) * 3)
    _, results = release(educator, [(first.record_id, 1), (second.record_id, 1), ("ef" * 16, 1)])
    for stored in (first, second):
        granted = results[(stored.record_id, 1)]
        assert granted["ciphertext_size"] == len(stored.ciphertext)
        # put_record commits as a client older than BLAKE3 does: its SHA-256, named so.
        assert granted["ciphertext_digest_alg"] == "sha256"
        assert granted["ciphertext_digest"] == b64(hashlib.sha256(stored.ciphertext).digest())
    assert set(results[("ef" * 16, 1)]) == {"record_id", "version", "status", "code"}
