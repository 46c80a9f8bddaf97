"""Fixtures of the SDK tests: a fake key service, an enrolled client of it, and a child."""

from __future__ import annotations

import httpx
import pytest

from tests.sdk.fake_keyservice import BASE, FakeKeyService
from vault.client import Client


def enrolled_client(service: FakeKeyService) -> Client:
    """A client enrolled with a new principal of ``service``, its blobs through the fake too."""
    transport = service.transport()
    client, _identity = Client.enrol(
        BASE,
        service.add_principal(),
        "test laptop",
        transport=transport,
        blob_client=httpx.Client(transport=transport),
    )
    return client


@pytest.fixture
def service() -> FakeKeyService:
    return FakeKeyService()


@pytest.fixture
def client(service: FakeKeyService) -> Client:
    return enrolled_client(service)


@pytest.fixture
def child(client: Client) -> str:
    return client.create_child(display_name="Ada", room="Robins")
