"""Session fixtures: real servers on loopback, stopped when the session ends (tests/servers.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import (
    KeyService,
    KeyServiceFactory,
    PostgresServer,
    S3Server,
    SoftHsm,
    make_temp_dir,
    start_postgres,
    start_s3_server,
    start_softhsm,
)


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """One private directory for every server's files and logs in this session."""
    path = make_temp_dir("carevault-servers-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(servers_dir: Path) -> Iterator[S3Server]:
    """moto's S3 server over real HTTP, with a fresh bucket for this session."""
    proc, server = start_s3_server(servers_dir)
    try:
        yield server
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def postgres_server(servers_dir: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL cluster in a temporary directory, with a fresh database."""
    # Its own directory: it is handed to the unprivileged account PostgreSQL runs as.
    base_dir = make_temp_dir("carevault-postgres-")
    proc, server = start_postgres(base_dir)
    try:
        yield server
    finally:
        proc.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def softhsm(servers_dir: Path) -> Iterator[SoftHsm]:
    """A SoftHSM2 token in a temporary store, with the root key's first version in it."""
    base_dir = servers_dir / "softhsm"
    base_dir.mkdir(mode=0o700)
    previous = os.environ.get("SOFTHSM2_CONF")
    try:
        yield start_softhsm(base_dir)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def keyservice_factory(
    servers_dir: Path, request: pytest.FixtureRequest
) -> Iterator[KeyServiceFactory]:
    """Starts key service processes on demand; PostgreSQL and S3 only start if asked for."""
    factory = KeyServiceFactory(
        servers_dir,
        postgres=lambda: request.getfixturevalue("postgres_server"),
        s3=lambda: request.getfixturevalue("s3_server"),
    )
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def keyservice_embedded(keyservice_factory: KeyServiceFactory) -> KeyService:
    """The key service on its embedded default: SQLite, local blobs, local root key."""
    return keyservice_factory(flavour="embedded")


@pytest.fixture(scope="session")
def keyservice_production(keyservice_factory: KeyServiceFactory) -> KeyService:
    """The key service on PostgreSQL and an S3 bucket (moto)."""
    return keyservice_factory(flavour="production")
