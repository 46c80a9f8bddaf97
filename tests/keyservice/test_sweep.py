"""``carevault-keyservice sweep`` on both flavours (security review, findings 6 and 9): it
aborts the multipart uploads of abandoned versions and every other unfinished one older than
the cut-off that no pending version owns, deletes what an upload URL wrote after its version
was swept, treats an absent object as deleted, and reports only real failures. On the shared
service, a sweep removes an abandoned version and its wrapped keys."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, text

from keyservice.db.tables import record_versions
from tests.keyservice.helpers import Device, Room, assigned_staff, bootstrap_admin, pending_version
from tests.servers import KeyService, KeyServiceFactory, run_keyservice_command
from vault.storage import (
    BlobStore,
    LocalDirectoryStore,
    ObjectNotFound,
    S3Store,
    make_blob_store,
    new_object_name,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB


@pytest.fixture(scope="module", params=["embedded", "production"])
def sweepable(request: pytest.FixtureRequest, keyservice_factory: KeyServiceFactory) -> KeyService:
    """A service of its own: the sweeps here remove every abandoned upload it has."""
    return keyservice_factory(
        flavour=request.param,
        extra_env={
            "CAREVAULT_MULTIPART_THRESHOLD_BYTES": str(PART),
            "CAREVAULT_PART_SIZE_BYTES": str(PART),
        },
    )


@pytest.fixture(scope="module")
def educator(sweepable: KeyService) -> tuple[Device, str]:
    return assigned_staff(sweepable, bootstrap_admin(sweepable))


@pytest.fixture
def db(sweepable: KeyService) -> Engine:
    return create_engine(sweepable.env["CAREVAULT_DATABASE_URL"])


def _store(service: KeyService) -> BlobStore:
    """The service's blob store, reached directly as the host's tools would."""
    location = service.env["CAREVAULT_BLOB_STORE"]
    if location.startswith("local:"):
        return make_blob_store(location, s3_endpoint_url=None, public_url="", token_key=b"t" * 32)
    bucket = service.s3_bucket()
    return bucket.store()


def _create(device: Device, child: str, size: int) -> dict[str, Any]:
    return pending_version(device, child_ids=[child], category="photo", ciphertext_size=size)


def _object_and_upload(db: Engine, created: dict[str, Any]) -> tuple[str, str | None]:
    with db.connect() as connection:
        row = connection.execute(
            select(record_versions.c.object_name, record_versions.c.upload_id).where(
                record_versions.c.record_id == created["record_id"]
            )
        ).one()
    return row.object_name, row.upload_id


def _sweep(service: KeyService, hours: str = "0") -> subprocess.CompletedProcess[str]:
    swept = run_keyservice_command(service.env, "sweep", "--older-than-hours", hours)
    assert swept.stderr == "", swept.stderr
    assert "retry" not in swept.stdout, swept.stdout
    return swept


def _uploads(store: BlobStore) -> set[str]:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return {u.upload_id for u in store.list_uploads(started_before=tomorrow)}


def _absent(store: BlobStore, name: str) -> bool:
    try:
        store.stat(name)
    except ObjectNotFound:
        return True
    return False


def test_the_upload_of_an_abandoned_version_is_aborted(
    sweepable: KeyService, educator: tuple[Device, str], db: Engine
) -> None:
    device, child = educator
    created = _create(device, child, PART + 10)
    assert created["upload"]["method"] == "multipart"
    first = httpx.put(created["upload"]["part_urls"][0], content=b"p" * PART, timeout=60.0)
    assert first.is_success, first.text
    name, upload_id = _object_and_upload(db, created)
    store = _store(sweepable)
    assert upload_id in _uploads(store)

    swept = _sweep(sweepable)
    assert upload_id not in _uploads(store)
    assert _absent(store, name)
    assert "removed 1 abandoned uploads" in swept.stdout
    if isinstance(store, LocalDirectoryStore):
        assert not (store.root / ".uploads" / upload_id).exists()
    late = httpx.put(created["upload"]["part_urls"][1], content=b"p" * 10, timeout=60.0)
    assert not late.is_success


def test_a_version_never_uploaded_is_swept_without_a_failure(
    sweepable: KeyService, educator: tuple[Device, str], db: Engine
) -> None:
    device, child = educator
    created = _create(device, child, 10)
    name, _ = _object_and_upload(db, created)
    _sweep(sweepable)
    assert _absent(_store(sweepable), name)


def test_an_unfinished_upload_no_version_owns_is_aborted(sweepable: KeyService) -> None:
    store = _store(sweepable)
    orphan = store.start_multipart(new_object_name(), size=10, part_size=PART, expires_s=60)
    assert orphan.upload_id in _uploads(store)
    swept = _sweep(sweepable)
    assert orphan.upload_id not in _uploads(store)
    assert "aborted 1 unfinished multipart uploads" in swept.stdout


def test_the_upload_of_a_live_version_is_spared(
    sweepable: KeyService, educator: tuple[Device, str], db: Engine
) -> None:
    device, child = educator
    created = _create(device, child, PART + 10)
    _, upload_id = _object_and_upload(db, created)
    store = _store(sweepable)
    # moto reports every upload as started in 2010: only ownership spares this one there.
    _sweep(sweepable, hours="1")
    assert upload_id in _uploads(store)
    with db.connect() as connection:
        state = connection.execute(
            select(record_versions.c.state).where(
                record_versions.c.record_id == created["record_id"]
            )
        ).scalar_one()
    assert state == "pending"


def test_an_object_uploaded_after_its_version_was_swept_is_deleted(
    sweepable: KeyService, educator: tuple[Device, str], db: Engine
) -> None:
    """A presigned S3 URL outlives its version; the sweeps after it delete what it wrote
    until it has expired. The local store refuses the upload outright."""
    device, child = educator
    created = _create(device, child, 10)
    name, _ = _object_and_upload(db, created)
    _sweep(sweepable)

    late = httpx.put(created["upload"]["url"], content=b"0123456789", timeout=30.0)
    store = _store(sweepable)
    if isinstance(store, S3Store):
        assert late.is_success  # moto, like S3, cannot tell that the version is gone
        assert not _absent(store, name)
    else:
        assert late.status_code == 404
    _sweep(sweepable)
    assert _absent(store, name)


def test_sweep_removes_abandoned_uploads(
    room: Room, service: KeyService, service_db: Engine
) -> None:
    pending = pending_version(room.educator, child_ids=[room.child])
    swept = run_keyservice_command(service.env, "sweep", "--older-than-hours", "0", check=False)
    assert swept.returncode == 0, swept.stderr[-2000:]
    with service_db.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM record_versions WHERE record_id = :r"),
            {"r": pending["record_id"]},
        ).scalar_one()
        wraps = connection.execute(
            text("SELECT count(*) FROM wrapped_record_keys WHERE record_id = :r"),
            {"r": pending["record_id"]},
        ).scalar_one()
    assert (left, wraps) == (0, 0)
