"""Fixtures for the key service tests: the real service on both databases, its admin, and a room
of people around a child."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.keyservice.helpers import Device, Room, bootstrap_admin, make_room
from tests.servers import KeyService


@pytest.fixture(scope="session", params=["embedded", "production"])
def service(request: pytest.FixtureRequest) -> KeyService:
    """The session's key service, once on SQLite + local blobs, once on PostgreSQL + S3."""
    running: KeyService = request.getfixturevalue(f"keyservice_{request.param}")
    return running


@pytest.fixture(scope="session")
def admin(service: KeyService) -> Device:
    return bootstrap_admin(service)


def database(service: KeyService) -> Engine:
    """A direct connection to the service's database, for tests that tamper with it."""
    return create_engine(service.env["CAREVAULT_DATABASE_URL"])


def last_audit_entry(
    engine: Engine, *, principal_id: str, action: str
) -> tuple[str, dict[str, Any]]:
    """The outcome and detail of the newest audit entry of ``principal_id`` for ``action``."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT outcome, detail FROM audit_entries WHERE actor_principal = :p "
                "AND action = :a ORDER BY seq DESC LIMIT 1"
            ),
            {"p": principal_id, "a": action},
        ).one()
    return row.outcome, json.loads(row.detail)


@pytest.fixture
def service_db(service: KeyService) -> Iterator[Engine]:
    engine = database(service)
    yield engine
    engine.dispose()


@pytest.fixture
def room(service: KeyService, admin: Device) -> Room:
    return make_room(service, admin)
