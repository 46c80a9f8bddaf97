"""Issue 16: a flood of bad signatures from one source grows the audit by a few entries a
window, not one per request (decision 0011, amendment). A service on the defaults (no
rejection-limit setting) takes more bad-signature requests from one address than its limit;
once it stops cleanly, that address has its first rejection as an entry of its own, the rest
as one entry with their count, and the 429s as one more: every request accounted for."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from keyservice.settings import Settings
from tests.keyservice.conftest import database
from tests.keyservice.helpers import bootstrap_admin
from tests.servers import KeyServiceFactory, embedded_env, free_port, make_temp_dir

pytestmark = pytest.mark.integration

# The defaults this test is about, read from the settings rather than restated.
DEFAULTS = Settings.model_fields
LIMIT: int = DEFAULTS["reject_limit"].default
AUDIT_EACH: int = DEFAULTS["reject_audit_each"].default
FLOOD = LIMIT + 30


def test_a_bad_signature_flood_costs_its_source_three_entries_a_window(
    keyservice_factory: KeyServiceFactory,
) -> None:
    assert AUDIT_EACH == 1
    port = free_port()
    env = embedded_env(make_temp_dir("flood-"), port=port)
    env.pop("CAREVAULT_REJECT_AUDIT_EACH")  # the suite's own setting: this test is the default's
    service = keyservice_factory.start(env, port=port)
    admin = bootstrap_admin(service)
    # The admin's key id, signed with another key: a bad signature from a known device.
    forger = replace(admin, signing_key=Ed25519PrivateKey.generate())
    source = f"198.51.100.{secrets.randbelow(254) + 1}"
    with forger.client(headers={"X-Forwarded-For": source}) as http:
        statuses = [http.get("/v1/me").status_code for _ in range(FLOOD)]
    assert statuses == [401] * LIMIT + [429] * (FLOOD - LIMIT)

    service.stop()  # a clean stop writes the counts of the window still open
    engine = database(service)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT action, detail FROM audit_entries WHERE outcome = 'deny' ORDER BY seq")
        ).all()
    engine.dispose()
    entries: list[tuple[str, dict[str, Any]]] = [
        (row.action, json.loads(row.detail)) for row in rows
    ]
    mine = [(action, detail) for action, detail in entries if detail.get("source") == source]
    assert len(mine) <= 3, mine
    singles = [d for _, d in mine if "count" not in d]
    counted = {d["reason"]: d["count"] for _, d in mine if "count" in d}
    assert [d["reason"] for d in singles] == ["bad_signature"] * AUDIT_EACH
    assert counted == {"bad_signature": LIMIT - AUDIT_EACH, "rate_limited": FLOOD - LIMIT}
    assert {action for action, _ in mine} == {"auth.reject"}
    # Claimed, never acted: the forged key id is not recorded as the admin's act.
    assert singles[0]["claimed_device"] == admin.device_id
