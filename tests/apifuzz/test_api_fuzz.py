"""API fuzzing with schemathesis over the key service's own OpenAPI document (issue 18 part 3,
decision 0029).

The schema is loaded from the real service process (``GET /openapi.json`` on 127.0.0.1) and
every generated case goes over real HTTP to it, signed as an enrolled device signs: the
request schemathesis builds is handed to ``httpx`` with the SDK's ``RequestSigner`` as its
auth (``vault.signing``; the signing hook is ``send`` below). For each case:

- signed: no 5xx; the response is valid against the document (status code, content type,
  body schema: schemathesis' own checks); every error is ``application/problem+json`` whose
  ``status`` is the response's;
- unsigned, and signed wrongly (a key the service does not know under the device's id, the
  body changed after signing, another audience, a ``created`` ten minutes old): always 401,
  the one authentication problem and nothing else (never a key, never a 5xx) — except the
  operations that take no signature (``UNSIGNED``).

Default run: ``CASES`` cases over all operations (≥ 1,000, about a minute);
``CAREVAULT_ASSURANCE=long`` runs ten times as many, randomised.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.keyservice.helpers import Device
from tests.servers import KeyService
from vault.signing import RequestSigner

LONG = os.environ.get("CAREVAULT_ASSURANCE") == "long"
# Cases per operation (hypothesis stops early on an operation with few distinct inputs).
PER_OPERATION = 250 if LONG else 25
MINIMUM_CASES = 10_000 if LONG else 1_000
PROBLEM_JSON = "application/problem+json"
# Operations that take no signature (docs/SIGNING.md): probes, enrolment with a one-time code.
UNSIGNED = {("GET", "/healthz"), ("GET", "/v1/noop"), ("POST", "/v1/enrol")}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Signs a request (in place or as a new one) and returns the request to send.
Sign = Callable[[httpx.Request], httpx.Request]
# The long mode runs ten times the cases; the suite's 300 s per test is for the default.
pytestmark = pytest.mark.timeout(3600 if LONG else 300)
AUTH_PROBLEM = {"type": "about:blank", "title": "authentication failed", "status": 401}


def _request(case: Any, base_url: str) -> httpx.Request:
    """The HTTP request schemathesis built for ``case`` (its own serialisation), as httpx's."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        body["content"] = kwargs["data"]
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    # schemathesis names itself in these; they are not part of what is fuzzed.
    for name in ("User-Agent", "X-Schemathesis-TestCaseId"):
        headers.pop(name, None)
    return httpx.Request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, **body
    )


def send(http: httpx.Client, case: Any, base_url: str, sign: Sign | None) -> httpx.Response:
    """The signing hook: send ``case`` over HTTP, signed by ``sign`` (a device's
    ``RequestSigner``) or not at all."""
    request = _request(case, base_url)
    return http.send(request if sign is None else sign(request))


def signing(signer: RequestSigner) -> Sign:
    """Sign as an enrolled device does: the SDK's signer, in place."""

    def sign(request: httpx.Request) -> httpx.Request:
        signer.sign(request)
        return request

    return sign


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers.get("content-type", "").startswith(PROBLEM_JSON), (
        f"{response.status_code} is not a problem: {response.headers.get('content-type')}"
    )
    body = response.json()
    assert isinstance(body, dict)
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("title"), str) and isinstance(body.get("type"), str), body
    return body


def _refused_as_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, f"{response.status_code}: {response.text[:500]}"
    body = _problem(response)
    # Exactly the one authentication problem: no key, no detail of why, nothing else.
    assert {k: v for k, v in body.items() if k != "detail"} == AUTH_PROBLEM, body
    assert body.get("detail") in (None, "authentication failed"), body


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.statuses: Counter[int] = Counter()
        self.refused: Counter[str] = Counter()

    def report(self, metric: str) -> None:
        """The suite's summary line (every failure fails the test, so a line printed is a
        run without one)."""
        print(
            json.dumps(
                {
                    "metric": metric,
                    "value": self.cases,
                    "failures": 0,
                    "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                    "ways": dict(self.refused),
                    "mode": "long" if LONG else "default",
                }
            )
        )


@pytest.fixture(scope="module")
def schema(fuzz_service: KeyService) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_service.base_url}/openapi.json")


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 50, "the document lost its operations"
    return operations


def _wrong_signers(device: Device) -> dict[str, Sign]:
    """Ways of signing that the service must refuse, each as a function that signs a request."""
    impostor = RequestSigner(device.device_id, Ed25519PrivateKey.generate(), device.audience)
    other_audience = RequestSigner(device.device_id, device.signing_key, "another-service")
    stale = device.signer(clock=lambda: time.time() - 600)
    honest = device.signer()

    def body_changed(request: httpx.Request) -> httpx.Request:
        honest.sign(request)
        # The body as signed plus one byte: the signed Content-Digest no longer matches.
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        return httpx.Request(
            request.method, request.url, headers=headers, content=request.content + b" "
        )

    return {
        "unknown key": signing(impostor),
        "other audience": signing(other_audience),
        "created ten minutes ago": signing(stale),
        "body changed after signing": body_changed,
    }


def test_signed_cases_conform_to_the_document(
    schema: Any, fuzz_service: KeyService, fuzz_admin: Device
) -> None:
    """≥ 1,000 generated cases, signed by an enrolled admin's device: no 5xx, every response
    as the document says, every error a problem."""
    tally = Tally()
    sign = signing(fuzz_admin.signer())
    with httpx.Client(timeout=30.0) as http:
        for operation in _operations(schema):

            @given(case=operation.as_strategy())
            @settings(
                max_examples=PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=not LONG,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Any) -> None:
                response = send(http, case, fuzz_service.base_url, sign)
                tally.cases += 1
                tally.statuses[response.status_code] += 1
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path}: {response.status_code} "
                    f"{response.text[:500]}\n{case.as_curl_command()}"
                )
                case.validate_response(response, checks=CHECKS)
                if response.status_code >= 400:
                    _problem(response)

            run()
    tally.report("apifuzz_signed_cases")
    assert tally.cases >= MINIMUM_CASES


def test_unsigned_and_wrongly_signed_cases_are_401(
    schema: Any, fuzz_service: KeyService, fuzz_educator: Device
) -> None:
    """Every generated case of every signed operation, sent unsigned or signed wrongly: 401,
    the one authentication problem, never a 5xx, never a key."""
    ways: dict[str, Sign | None] = {
        "unsigned": None,
        **_wrong_signers(fuzz_educator),
    }
    names = list(ways)
    tally = Tally()
    with httpx.Client(timeout=30.0) as http:
        for operation in _operations(schema):
            if (operation.method.upper(), operation.path) in UNSIGNED:
                continue

            @given(case=operation.as_strategy())
            @settings(
                max_examples=PER_OPERATION // 5 or 1,
                deadline=None,
                database=None,
                derandomize=not LONG,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Any) -> None:
                way = names[tally.cases % len(names)]
                response = send(http, case, fuzz_service.base_url, ways[way])
                tally.cases += 1
                tally.refused[way] += 1
                assert response.status_code == 401, (
                    f"{way}: {case.method} {case.formatted_path}: {response.status_code} "
                    f"{response.text[:500]}"
                )
                _refused_as_unauthenticated(response)

            run()
    tally.report("apifuzz_refused_cases")
    assert tally.cases >= MINIMUM_CASES // 5


def test_invalid_cases_are_refused_with_a_problem(
    schema: Any, fuzz_service: KeyService, fuzz_admin: Device
) -> None:
    """Cases generated to break the document (wrong types, missing fields, bad path
    parameters), signed: never a 5xx, every answer as the document says, every error a
    problem."""
    tally = Tally()
    sign = signing(fuzz_admin.signer())
    with httpx.Client(timeout=30.0) as http:
        for operation in _operations(schema):

            @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
            @settings(
                max_examples=PER_OPERATION // 5 or 1,
                deadline=None,
                database=None,
                derandomize=not LONG,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Any) -> None:
                try:
                    request = _request(case, fuzz_service.base_url)
                except (httpx.InvalidURL, UnicodeEncodeError, ValueError, TypeError):
                    tally.refused["not sendable"] += 1
                    return  # not an HTTP request a client can send (a header out of latin-1)
                response = http.send(sign(request))
                tally.cases += 1
                tally.statuses[response.status_code] += 1
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path}: {response.status_code} "
                    f"{response.text[:500]}"
                )
                case.validate_response(response, checks=CHECKS)
                if response.status_code >= 400:
                    _problem(response)
                else:
                    tally.refused[f"accepted: {case.method} {case.operation.path}"] += 1

            try:
                run()
            except Unsatisfiable:
                # No parameter and no body: nothing in the document to break.
                tally.refused["operations with nothing to break"] += 1
    tally.report("apifuzz_invalid_cases")
    assert tally.cases >= MINIMUM_CASES // 5
