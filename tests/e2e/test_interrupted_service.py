"""A key service killed (kill -9) in the middle of an upload, restarted and swept, leaves
nothing in its blob store but committed objects (security review, finding 9).

The upload goes in 5 MiB parts. On the embedded flavour the key service receives the parts
itself, so the kill cuts the upload off: the first part and the upload's manifest stay in
the local store. On the production flavour the parts go straight to S3, so the client
uploads them all and its commit fails: an unfinished multipart upload stays in the bucket.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from keyservice.db.tables import record_versions
from tests.e2e.world import Storage
from tests.keyservice.helpers import assign, bootstrap_admin, create_child, ok
from tests.servers import KeyService, KeyServiceFactory, run_keyservice_command
from vault.client import Client

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB


@pytest.mark.parametrize("flavour", ["embedded", "production"])
def test_a_sweep_after_the_service_died_mid_upload_leaves_only_committed_objects(
    flavour: str, keyservice_factory: KeyServiceFactory, tmp_path: Path
) -> None:
    service = keyservice_factory(
        flavour=flavour,
        extra_env={
            "CAREVAULT_MULTIPART_THRESHOLD_BYTES": str(PART),
            "CAREVAULT_PART_SIZE_BYTES": str(PART),
        },
    )
    admin = bootstrap_admin(service)
    child = create_child(admin)
    with admin.client() as http:
        principal = ok(
            http.post(
                "/v1/admin/principals",
                json={"kind": "staff", "display_name": "Eve", "roles": ["educator"]},
            )
        )["principal_id"]
        code = ok(http.post(f"/v1/admin/principals/{principal}/enrolment-codes"))["code"]
    # Enrolled before being assigned: a code for someone with rights needs a second person.
    eve, identity = Client.enrol(service.base_url, code, "eve's laptop")
    assign(admin, staff_id=principal, child_id=child, role="educator")

    kept = tmp_path / "kept.bin"
    kept.write_bytes(os.urandom(2 * MIB))
    with eve:
        committed = eve.put(child_ids=[child], category="photo", path=kept)
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(24 * MIB))
        halfway, killed = threading.Event(), threading.Event()
        sent = [0]
        outcome: dict[str, Any] = {}

        def progress(count: int) -> None:
            # Holds the upload inside its second part until the service is dead.
            sent[0] += count
            if sent[0] > PART + MIB and not halfway.is_set():
                halfway.set()
                killed.wait(60)

        def upload() -> None:
            try:
                eve.put(child_ids=[child], category="photo", path=big, progress=progress)
            except Exception as exc:
                outcome["error"] = exc

        uploader = threading.Thread(target=upload)
        uploader.start()
        try:
            assert halfway.wait(120), "the upload never reached its second part"
            os.kill(service.pid, signal.SIGKILL)
            service.process.popen.wait(timeout=30)
        finally:
            killed.set()
            uploader.join(120)
        assert "error" in outcome, "the upload must fail once the service is gone"
    service.stop()

    restarted = keyservice_factory.start(service.env, port=service.port)
    storage = Storage(restarted)
    left = set(storage.objects()) - _committed_paths(restarted.env, flavour)
    assert left or _unfinished_uploads(restarted), "the kill left nothing to sweep"
    swept = run_keyservice_command(restarted.env, "sweep", "--older-than-hours", "0")
    assert swept.stderr == "", swept.stderr
    assert "retry" not in swept.stdout, swept.stdout

    assert set(storage.objects()) == _committed_paths(restarted.env, flavour)
    assert _unfinished_uploads(restarted) == []
    with Client(identity) as again:
        out = tmp_path / "back.bin"
        again.get(committed.record_id, dst=out)
        assert out.read_bytes() == kept.read_bytes()
    restarted.stop()


def _committed_paths(env: dict[str, str], flavour: str) -> set[str]:
    """Where the committed versions' objects are: ``aa/name`` in a local store, ``name`` in a
    bucket."""
    engine = create_engine(env["CAREVAULT_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            names = connection.execute(
                select(record_versions.c.object_name).where(record_versions.c.state == "committed")
            ).scalars()
            found = set(names)
    finally:
        engine.dispose()
    assert found
    return {f"{n[:2]}/{n}" for n in found} if flavour == "embedded" else found


def _unfinished_uploads(service: KeyService) -> list[str]:
    location = service.env["CAREVAULT_BLOB_STORE"]
    if location.startswith("local:"):
        return [p.name for p in (Path(location.removeprefix("local:")) / ".uploads").iterdir()]
    bucket = service.s3_bucket()
    answer = bucket.client().list_multipart_uploads(Bucket=bucket.bucket)
    return [u["UploadId"] for u in answer.get("Uploads", [])]
