"""Rejected requests are rate limited per source and coalesced in the audit (decision 0011).

A flood of unsigned requests or bogus enrolment codes from one address is answered 401/400
up to CAREVAULT_REJECT_LIMIT per window, then 429 with Retry-After; the audit gets the first
CAREVAULT_REJECT_AUDIT_EACH rejections of each (source, reason) one by one and the rest as one
entry with their count when the window ends (or when the service stops). A key id whose
signature did not verify is recorded as claimed, never as that device's act. Real servers;
the flood tests run on a service of their own, with small limits, each from its own address
(uvicorn takes X-Forwarded-For from loopback, as it would from a trusted proxy).
"""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from tests.keyservice.conftest import database
from tests.keyservice.helpers import Device, b64
from tests.servers import KeyService, KeyServiceFactory
from vault.client.transport import KeyServiceTransport
from vault.errors import RateLimited
from vault.signing import RequestSigner

pytestmark = pytest.mark.integration

WINDOW_S = 6
LIMIT = 20
AUDIT_EACH = 3
FLOOD = 200
WORKERS = 8
# How long after a window ends its coalesced entries may take to appear on a busy machine.
SLACK_S = 10.0


@pytest.fixture(scope="module")
def limited(keyservice_factory: KeyServiceFactory) -> KeyService:
    return keyservice_factory(
        flavour="embedded",
        extra_env={
            "CAREVAULT_REJECT_WINDOW_SECONDS": str(WINDOW_S),
            "CAREVAULT_REJECT_LIMIT": str(LIMIT),
            "CAREVAULT_REJECT_AUDIT_EACH": str(AUDIT_EACH),
        },
    )


_used: set[str] = set()


@pytest.fixture
def source() -> str:
    """An address of its own for one test (TEST-NET-2, never a real client)."""
    while (address := f"198.51.100.{secrets.randbelow(254) + 1}") in _used:
        continue
    _used.add(address)
    return address


def _flood(send: Any, count: int = FLOOD) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(lambda _: send(), range(count)))


def _entries(service: KeyService, source: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(action, actor_device, detail) of the deny entries from ``source``, oldest first."""
    engine = database(service)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT action, actor_device, detail FROM audit_entries "
                "WHERE outcome = 'deny' ORDER BY seq"
            )
        ).all()
    engine.dispose()
    found = [(row.action, row.actor_device, json.loads(row.detail)) for row in rows]
    return [entry for entry in found if entry[2].get("source") == source]


def _wait_for_counts(
    service: KeyService, source: str, total: int
) -> list[tuple[str, str | None, dict[str, Any]]]:
    """The source's entries once their counts (1 for an entry without one) add up to
    ``total``; fails if they do not within a window and the slack."""
    deadline = time.monotonic() + WINDOW_S + SLACK_S
    while True:
        entries = _entries(service, source)
        if sum(detail.get("count", 1) for _, _, detail in entries) >= total:
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(f"counts of {source} did not reach {total}: {entries}")
        time.sleep(0.2)


def _summary(
    entries: list[tuple[str, str | None, dict[str, Any]]],
) -> dict[tuple[str, str], tuple[int, list[int]]]:
    """Per (action, reason): how many single entries, and the counts of coalesced ones."""
    result: dict[tuple[str, str], tuple[int, list[int]]] = {}
    for action, _, detail in entries:
        key = (action, detail["reason"])
        single, counts = result.get(key, (0, []))
        if "count" in detail:
            result[key] = (single, [*counts, detail["count"]])
        else:
            result[key] = (single + 1, counts)
    return result


def _assert_limited(responses: list[httpx.Response], refused: int) -> int:
    """The flood was refused ``refused`` up to the limit, 429 after it; the number refused.

    Requests already in flight when the limit is reached are still answered (at most one
    per worker of the flood)."""
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {refused, 429}, statuses
    assert LIMIT <= statuses.count(refused) < LIMIT + WORKERS, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert 1 <= int(response.headers["retry-after"]) <= WINDOW_S
    return statuses.count(refused)


def test_an_unsigned_flood_is_limited_and_coalesced(limited: KeyService, source: str) -> None:
    with httpx.Client(base_url=limited.base_url, timeout=30.0) as http:
        responses = _flood(lambda: http.get("/v1/me", headers={"X-Forwarded-For": source}))
        refused = _assert_limited(responses, refused=401)
        # Another address is not held back by this one.
        other = http.get("/v1/me", headers={"X-Forwarded-For": "198.51.100.255"})
        assert other.status_code == 401

        entries = _wait_for_counts(limited, source, FLOOD)
        assert _summary(entries) == {
            ("auth.reject", "missing_signature"): (AUDIT_EACH, [refused - AUDIT_EACH]),
            ("auth.reject", "rate_limited"): (0, [FLOOD - refused]),
        }

        # Once the window is over, the address is answered again.
        retry = max(int(r.headers.get("retry-after", "0")) for r in responses)
        time.sleep(retry)
        again = http.get("/v1/me", headers={"X-Forwarded-For": source})
        assert again.status_code == 401


class _From(httpx.HTTPTransport):
    """Real HTTP, as if from ``source`` (the service trusts X-Forwarded-For from loopback)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["X-Forwarded-For"] = self.source
        return super().handle_request(request)


def test_the_sdk_says_a_limited_address_is_held_back_and_for_how_long(
    limited: KeyService, source: str
) -> None:
    sdk = KeyServiceTransport(limited.base_url, signer=None, transport=_From(source))
    with httpx.Client(base_url=limited.base_url, timeout=30.0) as http:
        _flood(lambda: http.get("/v1/me", headers={"X-Forwarded-For": source}), count=LIMIT)
    with pytest.raises(RateLimited) as held:
        sdk.get("/v1/me", lambda body: body)
    sdk.close()
    assert held.value.status == 429
    assert held.value.retry_after is not None and 1 <= held.value.retry_after <= WINDOW_S
    assert f"Try again in {held.value.retry_after} s." in str(held.value)


def test_bogus_enrolment_codes_are_limited_and_coalesced(limited: KeyService, source: str) -> None:
    body = {
        "device_name": "guess",
        "signing_key": b64(secrets.token_bytes(32)),
        "receiving_key": b64(secrets.token_bytes(32)),
    }
    with httpx.Client(base_url=limited.base_url, timeout=30.0) as http:
        responses = _flood(
            lambda: http.post(
                "/v1/enrol",
                json={**body, "code": secrets.token_hex(12).upper()},
                headers={"X-Forwarded-For": source},
            )
        )
    refused = _assert_limited(responses, refused=400)
    entries = _wait_for_counts(limited, source, FLOOD)
    assert _summary(entries) == {
        ("device.enrol", "unknown_code"): (AUDIT_EACH, [refused - AUDIT_EACH]),
        ("auth.reject", "rate_limited"): (0, [FLOOD - refused]),
    }


def test_held_counts_are_written_when_the_service_stops(
    keyservice_factory: KeyServiceFactory, source: str
) -> None:
    service = keyservice_factory(
        flavour="embedded",
        extra_env={"CAREVAULT_REJECT_WINDOW_SECONDS": "3600", "CAREVAULT_REJECT_AUDIT_EACH": "2"},
    )
    with httpx.Client(base_url=service.base_url, timeout=30.0) as http:
        for _ in range(10):
            assert http.get("/v1/me", headers={"X-Forwarded-For": source}).status_code == 401
    assert _summary(_entries(service, source)) == {("auth.reject", "missing_signature"): (2, [])}
    service.stop()
    assert _summary(_entries(service, source)) == {
        ("auth.reject", "missing_signature"): (2, [8]),
    }


def _forged(device: Device, key_id: str, source: str) -> httpx.Response:
    """A request signed with a key that is not the device's, naming ``key_id``."""
    signer = RequestSigner(key_id, Ed25519PrivateKey.generate(), device.audience)
    with httpx.Client(base_url=device.base_url, auth=signer, timeout=30.0) as http:
        return http.get("/v1/me", headers={"X-Forwarded-For": source})


def test_a_forged_signature_is_recorded_as_claimed(
    service: KeyService, admin: Device, source: str
) -> None:
    assert _forged(admin, admin.device_id, source).status_code == 401
    unknown = secrets.token_hex(16)
    assert _forged(admin, unknown, source).status_code == 401

    engine = database(service)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT actor_principal, actor_device, detail FROM audit_entries "
                "WHERE action = 'auth.reject' ORDER BY seq DESC LIMIT 20"
            )
        ).all()
    engine.dispose()
    mine = [row for row in reversed(rows) if json.loads(row.detail).get("source") == source]
    assert [(row.actor_principal, row.actor_device) for row in mine] == [(None, None)] * 2
    assert [json.loads(row.detail) for row in mine] == [
        {
            "reason": "bad_signature",
            "method": "GET",
            "source": source,
            "claimed_device": admin.device_id,
        },
        {"reason": "unknown_device", "method": "GET", "source": source, "claimed_device": unknown},
    ]


def test_a_verified_device_is_still_the_actor_of_its_replay(
    service: KeyService, admin: Device, source: str
) -> None:
    """A replay was signed by the device (its signature verified): it stays the actor."""
    with admin.client() as http:
        first = http.get("/v1/me")
    assert first.status_code == 200
    replay = first.request
    replay.headers["X-Forwarded-For"] = source
    with httpx.Client(timeout=30.0) as plain:
        assert plain.send(replay).status_code == 401
    ((action, actor_device, detail),) = _entries(service, source)
    assert (action, actor_device, detail["reason"]) == (
        "auth.reject",
        admin.device_id,
        "replayed_nonce",
    )
    assert "claimed_device" not in detail


def test_the_shared_service_is_not_limited_by_default(service: KeyService) -> None:
    """The defaults leave room for a client that errs now and then (and for this suite)."""
    with httpx.Client(base_url=service.base_url, timeout=30.0) as http:
        for _ in range(30):
            assert http.get("/v1/me", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401
