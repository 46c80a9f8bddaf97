"""Limits with two instances behind the balancer (issue 16, part 4; decision 0031): body and
header sizes refused as problems by nginx and by each instance alike, nothing changed; a flood
of bad signatures answered 429 with Retry-After by both instances, each holding the per-
instance limit, and the audit chain growing by a bounded number of entries for the source.

The topology of deploy/topology.py, started for this module. The flood comes from an address
of its own (TEST-NET-2): nginx appends the address it sees to X-Forwarded-For, and uvicorn,
trusting loopback as it trusts the balancer, takes the last address it does not trust, which
for a client on loopback is the one the client named. The flood's test stops both instances
(cleanly, so they write the counts they hold): it comes last.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, Table, create_engine, func, select, text

from deploy import topology as topo
from keyservice.bodylimit import MAX_JSON_BODY
from keyservice.db.tables import audit_entries, children
from keyservice.ratelimit import MAX_HEADER_BYTES
from tests.keyservice.helpers import Device, bootstrap_admin
from tests.servers import KeyService
from vault.signing import RequestSigner

pytestmark = pytest.mark.integration

# The rejection settings' defaults (decision 0011), which the topology does not change.
LIMIT = 120
AUDIT_EACH = 1  # the default since issue 16 (decision 0011, amendment)
WINDOW_S = 60
FLOOD = 400
WORKERS = 8
# The balancer's limits (deploy/nginx/proxy.conf).
BALANCER_BODY = 8 * 1024 * 1024
BALANCER_HEADER_LINE = 8 * 1024
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def topology() -> Iterator[topo.Topology]:
    running = topo.start()
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = running.ca_file
    try:
        yield running
    finally:
        if previous is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = previous
        topo.stop(running)


@pytest.fixture(scope="module")
def admin(topology: topo.Topology) -> Device:
    env = topology.instance_env("a")
    service = KeyService(topology.url, Path(env["CAREVAULT_DATA_DIR"]), env, 0, cast(Any, None))
    return bootstrap_admin(service)


@pytest.fixture(scope="module")
def db(topology: topo.Topology) -> Iterator[Engine]:
    engine = create_engine(topology.postgres_url)
    yield engine
    engine.dispose()


def _count(db: Engine, table: Table) -> int:
    with db.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def _signed(device: Device, method: str, path: str, **kwargs: Any) -> httpx.Request:
    """A request signed by ``device`` for the balancer's URL."""
    with device.client() as http:
        request = http.build_request(method, path, **kwargs)
        return next(device.signer().auth_flow(request))


def _send(topology: topo.Topology, to: str, request: httpx.Request) -> httpx.Response:
    """``request`` through the balancer (``to="balancer"``) or straight to instance ``to``
    with the scheme the balancer would pass on."""
    headers = dict(request.headers)
    if to == "balancer":
        url = request.url
    else:
        url = httpx.URL(topology.instance_urls[to]).copy_with(raw_path=request.url.raw_path)
        headers["x-forwarded-proto"] = "https"
    return httpx.request(request.method, url, headers=headers, content=request.content)


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = cast(dict[str, Any], response.json())
    assert body["status"] == status
    return body


def _child(size: int) -> dict[str, str]:
    return {"display_name": "x" * size}


def test_an_oversized_body_is_refused_everywhere_and_changes_nothing(
    topology: topo.Topology, admin: Device, db: Engine
) -> None:
    before = _count(db, children), _count(db, audit_entries)
    over_service = _signed(admin, "POST", "/v1/admin/children", json=_child(MAX_JSON_BODY))
    for to in ("balancer", "a", "b"):
        body = _assert_problem(_send(topology, to, over_service), 413)
        assert str(MAX_JSON_BODY) in body["detail"]
    over_balancer = _signed(admin, "POST", "/v1/admin/children", json=_child(BALANCER_BODY))
    body = _assert_problem(_send(topology, "balancer", over_balancer), 413)
    assert "client_max_body_size" in body["detail"]
    assert (_count(db, children), _count(db, audit_entries)) == before
    # The same device's request of a normal size still goes through.
    fits = _signed(admin, "POST", "/v1/admin/children", json=_child(10))
    assert _send(topology, "balancer", fits).is_success
    assert _count(db, children) == before[0] + 1


def test_oversized_headers_are_refused_everywhere_and_change_nothing(
    topology: topo.Topology, admin: Device, db: Engine
) -> None:
    before = _count(db, children)
    # One header line over the balancer's line buffer: nginx refuses it (its 494, as 431).
    long_line = {"x-padding": "p" * BALANCER_HEADER_LINE}
    # Several lines each within it, over the key service's 8 KiB in all: the instance refuses.
    many_lines = {f"x-padding-{i}": "p" * 3000 for i in range(3)}
    for headers, to, by_service in (
        (long_line, "balancer", False),
        (many_lines, "balancer", True),
        (many_lines, "a", True),
        (long_line, "b", True),
    ):
        request = _signed(admin, "POST", "/v1/admin/children", json=_child(10), headers=headers)
        body = _assert_problem(_send(topology, to, request), 431)
        limit = str(MAX_HEADER_BYTES) if by_service else "large_client_header_buffers"
        assert limit in body["detail"], (to, body)
    assert _count(db, children) == before


def _forged(topology: topo.Topology, source: str) -> httpx.Response:
    """A request signed with a fresh key under a device id no one enrolled, from ``source``."""
    signer = RequestSigner(
        f"dev_{secrets.token_hex(8)}",
        Ed25519PrivateKey.generate(),
        topology.env["CAREVAULT_AUDIENCE"],
    )
    with httpx.Client(base_url=topology.url, auth=signer, timeout=60.0) as http:
        return http.get("/v1/me", headers={"X-Forwarded-For": source})


def _entries(db: Engine, source: str) -> list[dict[str, Any]]:
    """The details of the deny entries naming ``source``, oldest first."""
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT action, detail FROM audit_entries"
                " WHERE outcome = 'deny' AND detail LIKE :source ORDER BY seq"
            ),
            {"source": f"%{source}%"},
        ).all()
    found = [{"action": row.action, **json.loads(row.detail)} for row in rows]
    return [entry for entry in found if entry.get("source") == source]


def test_a_flood_of_bad_signatures_is_held_by_both_instances_and_bounded_in_the_audit(
    topology: topo.Topology, db: Engine
) -> None:
    assert not {"CAREVAULT_REJECT_LIMIT", "CAREVAULT_REJECT_AUDIT_EACH"} & set(topology.env)
    source = f"198.51.100.{secrets.randbelow(254) + 1}"
    logged = len(topo.served(topology))
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        responses = list(pool.map(lambda _: _forged(topology, source), range(FLOOD)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {401, 429}, statuses
    refused, limited = statuses.count(401), statuses.count(429)
    # Per instance with the total bounded: each instance refuses up to its own limit (and the
    # requests it had in flight when it reached it) before it answers 429.
    instances = len(topology.instance_urls)
    assert LIMIT < refused <= instances * (LIMIT + WORKERS), statuses
    for response in responses:
        if response.status_code == 429:
            _assert_problem(response, 429)
            assert 1 <= int(response.headers["retry-after"]) <= WINDOW_S
    # Both instances hold the source back, each on its own count: none refused more than its
    # limit and the requests in flight before answering 429.
    flood = [s for s in topo.served(topology)[logged:] if s.path == "/v1/me"]
    for name in topology.instance_urls:
        answered = [s.status for s in flood if s.instances[-1:] == (name,)]
        assert 429 in answered, (name, answered)
        assert answered.count(401) <= LIMIT + WORKERS, (name, answered)

    # A clean stop writes the counts each instance holds (decision 0011).
    for name in topology.instance_urls:
        topo.stop_proc(topology.proc(f"keyservice-{name}"))
    entries = _entries(db, source)
    reasons = {(e["action"], e["reason"]) for e in entries}
    rejected = [e for e in entries if e["reason"] != "rate_limited"]
    rate_limited = [e for e in entries if e["reason"] == "rate_limited"]
    assert len(reasons) == 2 and all(action == "auth.reject" for action, _ in reasons), reasons
    one_by_one = [e for e in rejected if "count" not in e]
    counted = [e for e in rejected if "count" in e]
    # Each instance audits its first AUDIT_EACH one by one and counts the rest in one entry;
    # the 429s are only counted, one entry per instance: every request is accounted for.
    assert len(one_by_one) == instances * AUDIT_EACH, entries
    assert len(counted) <= instances and len(rate_limited) <= instances, entries
    assert len(one_by_one) + sum(e["count"] for e in counted) == refused
    assert sum(e["count"] for e in rate_limited) == limited
    assert len(entries) <= instances * (AUDIT_EACH + 2)
