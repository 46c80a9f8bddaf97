"""Revoking a device or a person takes effect on their very next request. Both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.keyservice.helpers import Device, admin_enrols, ok
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def _refused_right_after(
    service: KeyService, admin: Device, revoked: Callable[[Device], str]
) -> None:
    """An educator signs a request, the admin posts to ``revoked(educator)``, and the
    educator's next request is refused."""
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        ok(http.get("/v1/me"))
        with admin.client() as admin_http:
            ok(admin_http.post(revoked(educator)))
        assert http.get("/v1/me").status_code == 401


def test_device_revocation_takes_effect_on_the_next_request(
    service: KeyService, admin: Device
) -> None:
    _refused_right_after(
        service, admin, lambda educator: f"/v1/admin/devices/{educator.device_id}/revoke"
    )


def test_principal_revocation_takes_effect_on_the_next_request(
    service: KeyService, admin: Device
) -> None:
    _refused_right_after(
        service, admin, lambda educator: f"/v1/admin/principals/{educator.principal_id}/revoke"
    )
