"""Random worlds built through the real key service and compared on real releases with the plain
model of docs/POLICY.md (decision 0028).

The default run builds a few dozen worlds on the embedded service; CAREVAULT_ASSURANCE=long
(`make assurance`) builds 1,000 more. A mismatch names the world's seed and describes it.
"""

from __future__ import annotations

import os

import pytest

from tests.keyservice.helpers import Device, approver_for, bootstrap_admin
from tests.model.api_worlds import compare
from tests.servers import KeyService

LONG = os.environ.get("CAREVAULT_ASSURANCE") == "long"
WORLDS = int(os.environ.get("CAREVAULT_API_WORLDS", "1000" if LONG else "50"))
# CAREVAULT_API_SEEDS=95,382: rebuild only the worlds of those seeds (a mismatch names its seed).
SEEDS = [int(s) for s in os.environ.get("CAREVAULT_API_SEEDS", "").split(",") if s] or list(
    range(WORLDS)
)

# A world takes about a second on a loaded 2-core machine; the long mode needs its own limit.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3 * WORLDS + 300)]


@pytest.fixture(scope="module")
def admins(keyservice_embedded: KeyService) -> tuple[KeyService, Device, Device]:
    admin = bootstrap_admin(keyservice_embedded)
    return keyservice_embedded, admin, approver_for(admin)


def test_worlds_built_through_the_api_release_what_the_document_says(
    admins: tuple[KeyService, Device, Device],
) -> None:
    service, admin, approver = admins
    comparisons, mismatches = 0, []
    for seed in SEEDS:
        result = compare(service, admin, approver, seed)
        comparisons += result.comparisons
        mismatches += result.mismatches
    assert comparisons >= len(SEEDS) * 10
    assert not mismatches, "\n".join(mismatches[:40])
