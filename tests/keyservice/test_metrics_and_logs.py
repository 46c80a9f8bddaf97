"""``/metrics`` (Prometheus text through prometheus-client, only to the bearer of
CAREVAULT_METRICS_TOKEN) and the JSON logs (one object a line, with the request id the answer
echoes), read from a real service after real work: enrolment, a record, a release, a request
with no signature. Neither ever carries an id, a name, a key or a path with ids in it."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.keyservice.helpers import (
    Device,
    assigned_staff,
    bootstrap_admin,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService, KeyServiceFactory, run_keyservice_command

pytestmark = pytest.mark.integration

TOKEN = "metrics-token-for-tests-0123456789abcdef"
CHILD_NAME = "Zebedee Quillfeather"


@pytest.fixture(scope="module")
def service(keyservice_factory: KeyServiceFactory) -> KeyService:
    return keyservice_factory(extra_env={"CAREVAULT_METRICS_TOKEN": TOKEN})


@pytest.fixture(scope="module")
def worked(service: KeyService) -> dict[str, Any]:
    """Real work on the service; what it made (ids, key, bytes) that must not be in labels
    or logs."""
    admin = bootstrap_admin(service)
    with admin.client() as http:
        named = ok(http.post("/v1/admin/children", json={"display_name": CHILD_NAME}))
    educator, child = assigned_staff(service, admin)
    record = put_record(educator, child_ids=[child], ciphertext=b"plaintext-stand-in-8841")
    response, results = release(educator, [(record.record_id, 1)])
    released = educator.open_key(response, results[(record.record_id, 1)])
    unsigned = httpx.post(f"{service.base_url}/v1/keys/release", json={"items": []})
    assert unsigned.status_code == 401
    return {
        "secrets": [
            record.record_id,
            child,
            named["child_id"],
            CHILD_NAME,
            educator.principal_id,
            educator.device_id,
            admin.principal_id,
            released.hex(),
            base64.b64encode(released).decode(),
            base64.urlsafe_b64encode(released).decode().rstrip("="),
            "plaintext-stand-in-8841",
        ],
        "educator": educator,
    }


def _scrape(service: KeyService, token: str | None = TOKEN) -> httpx.Response:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return httpx.get(f"{service.base_url}/metrics", headers=headers, timeout=30.0)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_releases_audit_and_rejections(
    service: KeyService, worked: dict[str, Any]
) -> None:
    scraped = _scrape(service)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(scraped.text)
    release_ok = (
        "carevault_http_requests_total",
        (("method", "POST"), ("route", "/v1/keys/release"), ("status", "200")),
    )
    assert samples[release_ok] == 1
    unsigned = (
        "carevault_http_requests_total",
        (("method", "POST"), ("route", "/v1/keys/release"), ("status", "401")),
    )
    assert samples[unsigned] == 1
    assert samples[("carevault_key_releases_total", (("outcome", "allow"),))] == 1
    granted = [
        (labels, value)
        for (name, labels), value in samples.items()
        if name == "carevault_key_release_items_total"
    ]
    assert granted == [((("basis", "assignment"), ("decision", "granted")), 1)]
    assert samples[("carevault_audit_batch_entries_count", ())] >= 1
    assert samples[("carevault_audit_batch_seconds_count", ())] >= 1
    assert samples[("carevault_audit_commit_wait_seconds_count", ())] >= 1
    rejected = (
        "carevault_rejections_total",
        (("action", "auth.reject"), ("reason", "missing_signature")),
    )
    assert samples[rejected] == 1
    assert samples[("carevault_nonce_cache_entries", ())] >= 1
    assert samples[("carevault_metrics_database_up", ())] == 1


def test_no_id_name_or_key_is_a_label(service: KeyService, worked: dict[str, Any]) -> None:
    text = _scrape(service).text
    for secret in worked["secrets"]:
        assert secret not in text
    routes = {
        dict(labels)["route"]
        for (name, labels) in _samples(text)
        if name == "carevault_http_requests_total"
    }
    assert "/v1/records/{record_id}/versions/{version}/commit" in routes
    assert not [r for r in routes if re.search(r"[0-9a-f]{16}|[A-Za-z0-9_-]{32}", r)], routes


def test_metrics_only_to_the_bearer_of_the_token(
    service: KeyService, keyservice_factory: KeyServiceFactory
) -> None:
    for token in (None, "wrong-" + TOKEN[6:]):
        refused = _scrape(service, token)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert "carevault_" not in refused.text
    without = keyservice_factory()
    assert _scrape(without).status_code == 404


def _log_lines(service: KeyService, *, request_ids: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The service's log, one JSON object a line. The access line of a request is written as
    its answer is sent, so it may land just after the client has the answer: wait (up to a
    bound) until a line names each of ``request_ids``."""
    deadline = time.monotonic() + 10
    while True:
        text = service.process.log_path.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        seen = {line.get("request_id") for line in lines if line["logger"] == "keyservice.access"}
        if set(request_ids) <= seen or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_logs_are_json_with_the_request_id_and_nothing_secret(
    service: KeyService, worked: dict[str, Any]
) -> None:
    educator: Device = worked["educator"]
    with educator.client() as http:
        answer = http.get("/v1/children", headers={"x-request-id": "trace-7f3a9c21"})
    assert answer.headers["x-request-id"] == "trace-7f3a9c21"
    bad_id = httpx.get(f"{service.base_url}/healthz", headers={"x-request-id": "no\tgood"})
    generated = bad_id.headers["x-request-id"]
    assert generated != "no\tgood"
    # every line parses as one JSON object
    lines = _log_lines(service, request_ids=("trace-7f3a9c21", generated))
    access = [line for line in lines if line["logger"] == "keyservice.access"]
    traced = [line for line in access if line.get("request_id") == "trace-7f3a9c21"]
    assert [(t["method"], t["route"], t["status"]) for t in traced] == [
        ("GET", "/v1/children", 200)
    ]
    assert any(line.get("request_id") == generated for line in access)
    assert {"time", "level", "logger", "message"} <= set(access[0])
    text = service.process.log_path.read_text()
    for secret in worked["secrets"]:
        assert secret not in text


def test_rotation_job_progress_is_a_gauge(service: KeyService, worked: dict[str, Any]) -> None:
    run_keyservice_command(service.env, "rotate-root")
    samples = _samples(_scrape(service).text)
    jobs = {
        dict(labels)["kind"]: (dict(labels)["state"], value)
        for (name, labels), value in samples.items()
        if name == "carevault_rotation_jobs"
    }
    assert jobs == {"root": ("done", 1)}
    done = samples[("carevault_rotation_job_wraps_done", (("kind", "root"), ("state", "done")))]
    total = samples[("carevault_rotation_job_wraps_total", (("kind", "root"), ("state", "done")))]
    assert done == total >= 1
