"""End-to-end fixtures: one nursery per key service flavour, on real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.world import World, build_world
from tests.servers import KeyServiceFactory


@pytest.fixture(scope="module", params=["embedded", "production"])
def world(request: pytest.FixtureRequest, keyservice_factory: KeyServiceFactory) -> Iterator[World]:
    """A nursery on a fresh key service: embedded (SQLite, local blobs) or production
    (PostgreSQL, moto S3)."""
    built = build_world(keyservice_factory(flavour=request.param))
    try:
        yield built
    finally:
        built.close()
        # The module's service is no one else's: stopped now rather than at session end.
        built.service.stop()


@pytest.fixture(scope="module")
def embedded_world(keyservice_factory: KeyServiceFactory) -> Iterator[World]:
    built = build_world(keyservice_factory(flavour="embedded"))
    try:
        yield built
    finally:
        built.close()
        # The module's service is no one else's: stopped now rather than at session end.
        built.service.stop()
