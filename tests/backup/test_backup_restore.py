"""``carevault-keyservice backup`` and ``restore`` (issue 16, part 5; decision 0025): a backup
taken while the service runs, restored into a fresh database on a fresh data directory (with
the key files and blobs backed up beside it, as docs/BACKUPS.md says), serves every record
again through a real service; a restore into a database that holds anything is refused. On
both databases."""

from __future__ import annotations

import dataclasses
import shutil
import stat
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.keyservice.helpers import (
    Device,
    StoredRecord,
    assigned_staff,
    bootstrap_admin,
    ok,
    put_record,
    release,
)
from tests.servers import (
    LOOPBACK,
    KeyService,
    KeyServiceFactory,
    PostgresServer,
    free_port,
    run_keyservice_command,
)

pytestmark = pytest.mark.integration

# What the embedded service keeps in its data directory besides the database, and is backed
# up apart from it (docs/BACKUPS.md).
KEY_FILES = ("root.key", "audit-signing.key", "audit-mac.key", "blob-token.key")


def _audit_actions(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(text("SELECT action FROM audit_entries ORDER BY seq")).scalars()
            )
    finally:
        engine.dispose()


def _fresh_host(
    service: KeyService, target: Path, request: pytest.FixtureRequest
) -> tuple[dict[str, str], int]:
    """The service's settings on a new data directory holding copies of its key files (and,
    embedded, its blobs) and pointing at a new, empty database; and its port."""
    target.mkdir(mode=0o700)
    for name in KEY_FILES:
        shutil.copy2(service.data_dir / name, target / name)
    port = free_port()
    env = {
        **service.env,
        "CAREVAULT_DATA_DIR": str(target),
        "CAREVAULT_ROOT_KEY": f"file:{target / 'root.key'}",
        "CAREVAULT_PUBLIC_URL": f"http://{LOOPBACK}:{port}",
    }
    if service.env["CAREVAULT_BLOB_STORE"].startswith("local:"):
        shutil.copytree(service.data_dir / "blobs", target / "blobs")
        env["CAREVAULT_BLOB_STORE"] = f"local:{target / 'blobs'}"
        env["CAREVAULT_DATABASE_URL"] = f"sqlite:///{target / 'carevault.db'}"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        env["CAREVAULT_DATABASE_URL"] = postgres.create_database().url
    return env, port


@pytest.mark.parametrize("flavour", ["embedded", "production"])
def test_a_backup_restored_into_a_fresh_database_serves_every_record(
    keyservice_factory: KeyServiceFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    flavour: str,
) -> None:
    service = keyservice_factory(flavour=flavour)
    admin = bootstrap_admin(service)
    dsl, child = assigned_staff(service, admin, role="dsl")
    records: list[StoredRecord] = [
        put_record(dsl, child_ids=[child], ciphertext=f"record {n}".encode()) for n in range(3)
    ]

    backup = tmp_path / "carevault.backup"
    made = run_keyservice_command(service.env, "backup", str(backup))
    assert f"to {backup}" in made.stdout
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    again = run_keyservice_command(service.env, "backup", str(backup), check=False)
    assert again.returncode == 1 and "never overwrites" in again.stderr

    env, port = _fresh_host(service, tmp_path / "restored-host", request)
    service.stop()
    # Without the deployment's audit keys nothing is restored (and no key is made up).
    no_keys = {**env, "CAREVAULT_AUDIT_MAC_KEY_FILE": str(tmp_path / "missing-mac.key")}
    refused_keys = run_keyservice_command(no_keys, "restore", str(backup), check=False)
    assert refused_keys.returncode == 1
    assert "nothing restored: the audit key file" in refused_keys.stderr
    assert not (tmp_path / "missing-mac.key").exists()
    restored = run_keyservice_command(env, "restore", str(backup), check=False)
    assert restored.returncode == 0, restored.stderr
    assert "audit chain intact" in restored.stdout, restored.stdout
    actions = _audit_actions(env["CAREVAULT_DATABASE_URL"])
    assert actions[-2:] == ["backup.start", "backup.restore"]

    # A second restore into the now non-empty database changes nothing.
    refused = run_keyservice_command(env, "restore", str(backup), check=False)
    assert refused.returncode == 1
    assert "nothing restored" in refused.stderr and "already holds" in refused.stderr
    assert _audit_actions(env["CAREVAULT_DATABASE_URL"]) == actions

    again_served = keyservice_factory.start(env, port=port)
    reader: Device = dataclasses.replace(dsl, base_url=again_served.base_url)
    response, results = release(
        reader, [(r.record_id, r.version) for r in records], include_urls=True
    )
    for record in records:
        result = results[(record.record_id, record.version)]
        assert result["status"] == "granted", result
        assert reader.open_key(response, result) == record.record_key
        assert httpx.get(result["download_url"], timeout=30.0).content == record.ciphertext
    verified = run_keyservice_command(env, "audit", "verify")
    assert "audit chain intact" in verified.stdout


def test_a_restore_names_the_audit_entries_written_after_the_backup_as_lost(
    keyservice_factory: KeyServiceFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The usual disaster: the service went on after the backup and signed a checkpoint of
    its later chain into the store. The restore serves the backup's records, refuses the
    later ones like any unknown record, and says from which audit entry on history is lost."""
    service = keyservice_factory(flavour="embedded")
    admin = bootstrap_admin(service)
    dsl, child = assigned_staff(service, admin, role="dsl")
    kept = put_record(dsl, child_ids=[child], ciphertext=b"before the backup")
    backup = tmp_path / "carevault.backup"
    run_keyservice_command(service.env, "backup", str(backup))
    entries_in_backup = len(_audit_actions(service.env["CAREVAULT_DATABASE_URL"]))
    later = put_record(dsl, child_ids=[child], ciphertext=b"after the backup")
    assert "checkpoint: seq" in run_keyservice_command(service.env, "audit", "checkpoint").stdout

    env, port = _fresh_host(service, tmp_path / "restored-host", request)
    service.stop()
    restored = run_keyservice_command(env, "restore", str(backup), check=False)
    assert restored.returncode == 0, restored.stderr
    assert f"from entry {entries_in_backup + 1}, are lost" in restored.stderr
    actions = _audit_actions(env["CAREVAULT_DATABASE_URL"])
    assert (len(actions), actions[-1]) == (entries_in_backup + 1, "backup.restore")

    again_served = keyservice_factory.start(env, port=port)
    reader: Device = dataclasses.replace(dsl, base_url=again_served.base_url)
    response, results = release(
        reader, [(kept.record_id, kept.version), (later.record_id, later.version)]
    )
    assert reader.open_key(response, results[(kept.record_id, kept.version)]) == kept.record_key
    assert results[(later.record_id, later.version)]["status"] == "denied"


SLOW_JOBS = {
    # One wrap per batch, then a pause of 100 000 times the batch's own time (minutes): a job
    # started here stays in progress after its first batch until the service stops.
    "CAREVAULT_JOB_BATCH_SIZE": "1",
    "CAREVAULT_JOB_YIELD": "100000",
    "CAREVAULT_JOB_LEASE_SECONDS": "1",
}


def _job(device: Device, job_id: str) -> dict[str, object]:
    with device.client() as http:
        job: dict[str, object] = ok(http.get(f"/v1/admin/jobs/{job_id}"))
    return job


def test_a_rotation_job_in_progress_in_the_backup_resumes_and_finishes_after_restore(
    keyservice_factory: KeyServiceFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    service = keyservice_factory(flavour="embedded", extra_env=SLOW_JOBS)
    admin = bootstrap_admin(service)
    dsl, child = assigned_staff(service, admin, role="dsl")
    records = [put_record(dsl, child_ids=[child], ciphertext=bytes([n]) * 9) for n in range(3)]
    with admin.client() as http:
        started = ok(http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child}))
    job_id = str(started["job"]["job_id"])
    while _job(admin, job_id)["done"] == 0:
        threading.Event().wait(0.05)
    backup = tmp_path / "carevault.backup"
    run_keyservice_command(service.env, "backup", str(backup))

    env, port = _fresh_host(service, tmp_path / "restored-host", request)
    for name in SLOW_JOBS:
        env.pop(name)
    service.stop()
    restored = run_keyservice_command(env, "restore", str(backup), check=False)
    assert restored.returncode == 0, restored.stderr
    engine = create_engine(env["CAREVAULT_DATABASE_URL"])
    with engine.connect() as connection:
        in_backup = connection.execute(
            text("SELECT state, done, total FROM rotation_jobs WHERE job_id = :j"), {"j": job_id}
        ).one()
    assert tuple(in_backup) == ("running", 1, 3)

    again_served = keyservice_factory.start(env, port=port)
    on_restored = dataclasses.replace(admin, base_url=again_served.base_url)
    while (job := _job(on_restored, job_id))["state"] == "running":
        threading.Event().wait(0.1)
    assert (job["state"], job["done"]) == ("done", 3), job
    with engine.connect() as connection:
        versions = set(
            connection.execute(
                text("SELECT child_key_version FROM wrapped_record_keys WHERE child_id = :c"),
                {"c": child},
            ).scalars()
        )
    engine.dispose()
    assert versions == {2}
    reader = dataclasses.replace(dsl, base_url=again_served.base_url)
    response, results = release(reader, [(r.record_id, r.version) for r in records])
    for record in records:
        assert reader.open_key(response, results[(record.record_id, record.version)]) == (
            record.record_key
        )
