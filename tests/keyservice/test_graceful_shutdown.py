"""SIGTERM in the middle of a key release: the release in flight is answered in full (its
keys open, its audit entry committed) before the process exits (after uvicorn's orderly
shutdown, re-raising the signal); nothing new
is accepted meanwhile (uvicorn's timeout_graceful_shutdown, CAREVAULT_SHUTDOWN_GRACE_SECONDS).

The release is held in flight by sending its headers and half its body, then waiting until
the service's own in-flight gauge counts it, so the signal lands mid-request by construction."""

from __future__ import annotations

import os
import signal
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from keyservice.db.tables import audit_entries
from tests.keyservice.helpers import assigned_staff, bootstrap_admin, put_record
from tests.servers import KeyServiceFactory

pytestmark = pytest.mark.integration

TOKEN = "graceful-shutdown-metrics-token-0123456789"


def _in_flight(base_url: str) -> float:
    text = httpx.get(
        f"{base_url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10.0
    ).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "carevault_http_requests_in_flight":
                return sample.value
    raise AssertionError("no in-flight gauge")


def _raw(request: httpx.Request) -> tuple[bytes, bytes]:
    """The request's head as bytes, and its body."""
    target = request.url.raw_path.decode()
    lines = [f"{request.method} {target} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head, request.content


def _read_response(conn: socket.socket) -> bytes:
    received = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return received
        received += chunk


def test_sigterm_lets_the_release_in_flight_finish(keyservice_factory: KeyServiceFactory) -> None:
    service = keyservice_factory(
        extra_env={"CAREVAULT_METRICS_TOKEN": TOKEN, "CAREVAULT_SHUTDOWN_GRACE_SECONDS": "60"}
    )
    admin = bootstrap_admin(service)
    educator, child = assigned_staff(service, admin)
    record = put_record(educator, child_ids=[child])
    engine = create_engine(service.env["CAREVAULT_DATABASE_URL"])
    releases = (
        select(func.count())
        .select_from(audit_entries)
        .where(audit_entries.c.action == "keys.release")
    )
    with engine.connect() as db:
        before = db.execute(releases).scalar_one()

    request = httpx.Request(
        "POST",
        f"{service.base_url}/v1/keys/release",
        json={"items": [{"record_id": record.record_id, "version": 1}]},
        headers={"connection": "close"},
    )
    educator.signer().sign(request)
    head, body = _raw(request)
    address = urlsplit(service.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as conn:
        conn.sendall(head + body[: len(body) // 2])
        # In flight: this release and the scrape asking.
        while _in_flight(service.base_url) < 2:
            time.sleep(0.05)
        os.kill(service.pid, signal.SIGTERM)
        # Nothing new is accepted once the service is shutting down.
        while True:
            try:
                httpx.get(f"{service.base_url}/healthz", timeout=2.0)
            except httpx.TransportError:
                break
            time.sleep(0.05)
        assert service.process.running()
        conn.sendall(body[len(body) // 2 :])
        answer = _read_response(conn)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", answer[:300]
    response = httpx.Response(
        200,
        headers=[
            tuple(line.split(b": ", 1))  # type: ignore[misc]
            for line in rest.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        ],
        content=rest.split(b"\r\n\r\n", 1)[1],
        request=request,
    )
    (item,) = response.json()["results"]
    assert educator.open_key(response, item) == record.record_key
    # uvicorn shuts down in order, then re-raises the signal it caught: the process ends
    # "by SIGTERM" after, not instead of, its shutdown.
    assert service.process.popen.wait(timeout=60) == -signal.SIGTERM
    log = service.log_tail()
    assert "Application shutdown complete." in log
    assert "Finished server process" in log
    with engine.connect() as db:
        assert db.execute(releases).scalar_one() == before + 1
    engine.dispose()
