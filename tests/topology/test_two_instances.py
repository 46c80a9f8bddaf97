"""What holds on one key service process holds on two behind the balancer (issue 16, part 1):
the topology of deploy/topology.py, started once for this module."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from deploy import topology as topo
from tests.keyservice.helpers import Device, admin_enrols, bootstrap_admin, ok
from tests.servers import KeyService

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def topology() -> Iterator[topo.Topology]:
    running = topo.start()
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = running.ca_file  # the clients trust the topology's CA
    try:
        yield running
    finally:
        if previous is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = previous
        topo.stop(running)


@pytest.fixture(scope="module")
def service(topology: topo.Topology) -> KeyService:
    """The balancer's URL with instance a's host settings, as the helpers want a service."""
    env = topology.instance_env("a")
    return KeyService(topology.url, Path(env["CAREVAULT_DATA_DIR"]), env, 0, cast(Any, None))


@pytest.fixture(scope="module")
def admin(service: KeyService) -> Device:
    return bootstrap_admin(service)


def _direct(topology: topo.Topology, name: str, request: httpx.Request) -> httpx.Response:
    """``request`` (signed for the balancer's URL) sent straight to instance ``name``, with
    the Host and scheme the balancer would pass on."""
    url = httpx.URL(topology.instance_urls[name]).copy_with(raw_path=request.url.raw_path)
    headers = dict(request.headers)
    headers["x-forwarded-proto"] = "https"
    return httpx.request(request.method, url, headers=headers, content=request.content)


def _signed(device: Device, method: str, path: str) -> httpx.Request:
    with device.client() as http:
        request = http.build_request(method, path)
        return next(device.signer().auth_flow(request))


def test_a_request_accepted_by_one_instance_is_refused_as_a_replay_by_the_other(
    topology: topo.Topology, admin: Device
) -> None:
    request = _signed(admin, "GET", "/v1/me")
    assert _direct(topology, "a", request).status_code == 200
    assert _direct(topology, "b", request).status_code == 401


def test_a_device_revoked_through_one_instance_is_refused_by_the_other(
    topology: topo.Topology, service: KeyService, admin: Device
) -> None:
    staff = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assert _direct(topology, "b", _signed(staff, "GET", "/v1/me")).status_code == 200
    response = _direct(
        topology, "a", _signed(admin, "POST", f"/v1/admin/devices/{staff.device_id}/revoke")
    )
    assert response.status_code == 204, response.text
    assert _direct(topology, "b", _signed(staff, "GET", "/v1/me")).status_code == 401


def test_the_balancer_speaks_tls_with_the_topologys_ca(
    topology: topo.Topology, admin: Device
) -> None:
    with dataclasses.replace(admin).client() as http:
        assert ok(http.get("/v1/me"))["principal_id"] == admin.principal_id
    with pytest.raises(httpx.ConnectError):
        httpx.get(
            f"{topology.url}/healthz",
            verify=__import__("ssl").create_default_context(cafile=__import__("certifi").where()),
        )
