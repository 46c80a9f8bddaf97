"""Revoking a device or a person takes effect on their very next request. Both databases."""

from __future__ import annotations

import pytest

from tests.keyservice.helpers import Device, admin_enrols, ok
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def test_device_revocation_takes_effect_on_the_next_request(
    service: KeyService, admin: Device
) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        ok(http.get("/v1/me"))
        with admin.client() as admin_http:
            ok(admin_http.post(f"/v1/admin/devices/{educator.device_id}/revoke"))
        assert http.get("/v1/me").status_code == 401


def test_principal_revocation_takes_effect_on_the_next_request(
    service: KeyService, admin: Device
) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        ok(http.get("/v1/me"))
        with admin.client() as admin_http:
            ok(admin_http.post(f"/v1/admin/principals/{educator.principal_id}/revoke"))
        assert http.get("/v1/me").status_code == 401
