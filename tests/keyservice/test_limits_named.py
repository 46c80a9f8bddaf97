"""A refusal by a limit names the setting that raises it (issue 16): a record version over
CAREVAULT_MAX_UPLOAD_BYTES is refused 413 with a problem whose detail names that setting."""

from __future__ import annotations

import pytest

from tests.keyservice.helpers import assigned_staff, bootstrap_admin
from tests.servers import KeyServiceFactory

pytestmark = pytest.mark.integration

LIMIT = 4096


def test_an_upload_over_the_limit_names_the_setting(keyservice_factory: KeyServiceFactory) -> None:
    service = keyservice_factory(extra_env={"CAREVAULT_MAX_UPLOAD_BYTES": str(LIMIT)})
    admin = bootstrap_admin(service)
    educator, child = assigned_staff(service, admin)
    body = {"child_ids": [child], "category": "observation"}
    with educator.client() as http:
        refused = http.post("/v1/records", json={**body, "ciphertext_size": LIMIT + 1})
        accepted = http.post("/v1/records", json={**body, "ciphertext_size": LIMIT})
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 413
    assert problem["detail"] == (
        f"the ciphertext is larger than {LIMIT} bytes, the limit CAREVAULT_MAX_UPLOAD_BYTES "
        "sets; an operator can raise it"
    )
    assert accepted.status_code == 201, accepted.text
