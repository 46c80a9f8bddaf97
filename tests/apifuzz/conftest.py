"""A key service of its own for the API fuzzing suite, and the devices that sign its requests.

The service is the real ``carevault-keyservice serve`` process on 127.0.0.1 (tests/servers.py),
on its embedded default (SQLite, local blobs). Its rejection limit is raised so that the
unsigned and wrongly signed variants are each answered (401) rather than rate limited (429)
after the first 120; everything else is the default.
"""

from __future__ import annotations

import pytest

from tests.keyservice.helpers import Device, admin_enrols, bootstrap_admin
from tests.servers import KeyService, KeyServiceFactory


@pytest.fixture(scope="module")
def fuzz_service(keyservice_factory: KeyServiceFactory) -> KeyService:
    return keyservice_factory(flavour="embedded", extra_env={"CAREVAULT_REJECT_LIMIT": "1000000"})


@pytest.fixture(scope="module")
def fuzz_admin(fuzz_service: KeyService) -> Device:
    return bootstrap_admin(fuzz_service)


@pytest.fixture(scope="module")
def fuzz_educator(fuzz_service: KeyService, fuzz_admin: Device) -> Device:
    return admin_enrols(fuzz_service, fuzz_admin, kind="staff", roles=["educator"])
