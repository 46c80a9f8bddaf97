"""What the API fuzzing suite and the parser fuzzers found, kept as named cases over real HTTP
to the real service (decision 0029). Each failed before its fix."""

from __future__ import annotations

from typing import Any

import httpx

from tests.keyservice.helpers import Device
from tests.servers import KeyService

PROBLEM_JSON = "application/problem+json"


def test_openapi_document_states_every_error_as_a_problem(fuzz_service: KeyService) -> None:
    """schemathesis ST105 (undocumented Content-Type): the document said a 422 is FastAPI's
    ``HTTPValidationError`` as application/json and stated no other error, while the service
    answers every error as application/problem+json."""
    document = httpx.get(f"{fuzz_service.base_url}/openapi.json", timeout=30.0).json()
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation["responses"]
            errors = {code: r for code, r in responses.items() if code == "default" or code >= "4"}
            assert "default" in errors, f"{method} {path}"
            for code, answer in errors.items():
                assert list(answer["content"]) == [PROBLEM_JSON], f"{method} {path} {code}"


def _import(admin: Device, text: str) -> httpx.Response:
    with admin.client() as http:
        return http.post("/v1/admin/imports", json={"csv": text, "dry_run": True})


def _bad_file(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == 422
    return body


def test_import_with_a_bare_carriage_return_is_422_not_500(fuzz_admin: Device) -> None:
    """fuzz_csv_import crash-e809aef1: ``K]\\r`=`` made the csv module raise ("new-line
    character seen in unquoted field"), answered 500."""
    _bad_file(_import(fuzz_admin, "K]\r`="))


def test_import_with_a_field_over_the_csv_limit_is_422_not_500(fuzz_admin: Device) -> None:
    """A field over the csv module's 131,072 characters (the body may hold 4 MiB) made it
    raise ("field larger than field limit"), answered 500."""
    text = "staff_id,room,role,valid_from,valid_to\n" + "a" * 140_000 + ",room 1,dsl,,\n"
    _bad_file(_import(fuzz_admin, text))
