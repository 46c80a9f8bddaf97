"""What holds on one key service process holds on two behind the balancer (issue 16, part 1):
the topology of deploy/topology.py, started once for this module.

The last test kills instance b: tests that need both instances come before it.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from deploy import topology as topo
from tests.keyservice.helpers import (
    Device,
    StoredRecord,
    add_guardian,
    admin_enrols,
    assigned_staff,
    bootstrap_admin,
    enrol,
    guardian_consent,
    ok,
    own_code,
    put_record,
    release,
)
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


@pytest.fixture(scope="module")
def db(topology: topo.Topology) -> Iterator[Engine]:
    """The shared database, to check what the instances committed."""
    engine = create_engine(topology.postgres_url)
    yield engine
    engine.dispose()


class _Pinned(httpx.HTTPTransport):
    """Sends every request, signed for the balancer's URL, straight to one instance with the
    Host and scheme the balancer would pass on."""

    def __init__(self, instance_url: str) -> None:
        super().__init__()
        self._to = httpx.URL(instance_url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._to.scheme, host=self._to.host, port=self._to.port
        )
        request.headers["x-forwarded-proto"] = "https"
        return super().handle_request(request)


@dataclasses.dataclass
class _PinnedDevice(Device):
    """A device whose requests all go to one instance, bypassing the balancer."""

    instance_url: str = ""

    def client(self, **kwargs: Any) -> httpx.Client:
        return super().client(transport=_Pinned(self.instance_url), **kwargs)


def _on(topology: topo.Topology, name: str, device: Device) -> Device:
    fields = {f.name: getattr(device, f.name) for f in dataclasses.fields(Device)}
    return _PinnedDevice(**fields, instance_url=topology.instance_urls[name])


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


DOWNLOADERS = 20
CAP = 3


def test_a_share_cap_holds_exactly_under_concurrent_downloads_through_both_instances(
    topology: topo.Topology, service: KeyService, admin: Device, db: Engine
) -> None:
    dsl, child = assigned_staff(service, admin, role="dsl")
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    agency = admin_enrols(service, admin, kind="external", organisation="County")
    consent = guardian_consent(
        guardian,
        child_id=child,
        recipient_id=agency.principal_id,
        categories=["observation"],
        purpose="referral",
    )
    obs = put_record(dsl, child_ids=[child])
    with dsl.client() as http:
        share_id = ok(
            http.post(
                "/v1/shares",
                json={
                    "recipient_id": agency.principal_id,
                    "basis": "consent",
                    "basis_id": consent,
                    "purpose": "referral to speech therapy",
                    "record_ids": [obs.record_id],
                    "download_cap": CAP,
                },
            )
        )["share_id"]
    # Distinct devices: a retry by one device within the grace window is not counted again.
    devices = [agency, *(enrol(service.base_url, own_code(agency)) for _ in range(DOWNLOADERS - 1))]
    logged_before = len(topo.served(topology))
    start = threading.Barrier(len(devices))

    def download(device: Device) -> bool:
        start.wait()
        _, results = release(device, [(obs.record_id, obs.version)])
        return bool(results[(obs.record_id, obs.version)]["status"] == "granted")

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        outcomes = list(pool.map(download, devices))

    releases = [
        line
        for line in topo.served(topology)[logged_before:]
        if (line.method, line.path) == ("POST", "/v1/keys/release")
    ]
    by_instance = {name: sum(r.instances[-1] == name for r in releases) for name in topo.INSTANCES}
    print(f"cap race: {outcomes.count(True)} of {len(devices)} granted, cap {CAP}, {by_instance}")
    assert len(releases) == DOWNLOADERS
    assert all(by_instance.values()), by_instance  # both instances decided some
    assert outcomes.count(True) == CAP
    with db.connect() as connection:
        used = connection.execute(
            text("SELECT used FROM share_items WHERE share_id = :s"), {"s": share_id}
        ).scalar_one()
    assert used == CAP


def _wrap_versions(db: Engine, record_id: str) -> set[int]:
    with db.connect() as connection:
        return set(
            connection.execute(
                text("SELECT child_key_version FROM wrapped_record_keys WHERE record_id = :r"),
                {"r": record_id},
            ).scalars()
        )


def _released_key(device: Device, record: StoredRecord) -> bytes:
    response, results = release(device, [(record.record_id, record.version)])
    result = results[(record.record_id, record.version)]
    assert result["status"] == "granted", result
    return device.open_key(response, result)


def test_a_child_key_rotated_through_one_instance_is_never_used_stale_by_the_other(
    topology: topo.Topology, service: KeyService, admin: Device, db: Engine
) -> None:
    dsl, child = assigned_staff(service, admin, role="dsl")
    before = put_record(_on(topology, "b", dsl), child_ids=[child])
    # Instance b unwraps (and caches) the child's version 1 key for this release.
    assert _released_key(_on(topology, "b", dsl), before) == before.record_key

    on_a = _on(topology, "a", admin)
    with on_a.client() as http:
        started = ok(http.post("/v1/admin/rotations", json={"kind": "child", "child_id": child}))
        job_id = started["job"]["job_id"]
        assert started["to_version"] == 2
        while (job := ok(http.get(f"/v1/admin/jobs/{job_id}")))["state"] == "running":
            threading.Event().wait(0.05)
    assert (job["state"], job["done"]) == ("done", 1), job
    assert _wrap_versions(db, before.record_id) == {2}

    # Through b after the job: the old record opens through the new version's wrap, and a
    # new record is wrapped under the new version, never under b's cached version 1.
    on_b = _on(topology, "b", dsl)
    assert _released_key(on_b, before) == before.record_key
    after = put_record(on_b, child_ids=[child])
    assert _wrap_versions(db, after.record_id) == {2}
    # Version 1 destroyed through a (which forgets it; b may still hold it in memory): b
    # still releases both records, so it used version 2 for them.
    with on_a.client() as http:
        ok(http.put(f"/v1/admin/children/{child}/min-decryption-version", json={"version": 2}))
        versions = ok(http.post(f"/v1/admin/children/{child}/trim-key-versions"))
    assert [(v["version"], v["state"]) for v in versions["versions"]] == [
        (1, "destroyed"),
        (2, "active"),
    ]
    assert _released_key(on_b, before) == before.record_key
    assert _released_key(on_b, after) == after.record_key


WRITERS = 4
COMMITS_BEFORE_KILL = 4
COMMITS_AFTER_KILL_PER_WRITER = 2


@dataclasses.dataclass
class _Outcome:
    record: StoredRecord | None
    started_after_kill: bool
    error: str = ""


def test_one_instance_killed_mid_load_loses_no_committed_record(
    topology: topo.Topology, service: KeyService, admin: Device
) -> None:
    """Runs last: instance b stays down afterwards."""
    dsl, child = assigned_staff(service, admin, role="dsl")
    logged_before = len(topo.served(topology))
    killed = threading.Event()
    enough_before = threading.Semaphore(0)
    outcomes: list[_Outcome] = []
    lock = threading.Lock()

    def write() -> None:
        after = 0
        while after < COMMITS_AFTER_KILL_PER_WRITER:
            started_after_kill = killed.is_set()
            try:
                record = put_record(dsl, child_ids=[child], ciphertext=secrets.token_bytes(64))
                outcome = _Outcome(record, started_after_kill)
            except (AssertionError, httpx.HTTPError) as exc:  # a refused or broken request
                outcome = _Outcome(None, started_after_kill, str(exc).split(":")[0])
            with lock:
                outcomes.append(outcome)
            if outcome.record is not None:
                enough_before.release()
            after += started_after_kill

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        writers = [pool.submit(write) for _ in range(WRITERS)]
        for _ in range(COMMITS_BEFORE_KILL):
            assert enough_before.acquire(timeout=120)
        served_before_kill = topo.served(topology)[logged_before:]
        topo.kill_instance(topology, "b")
        killed.set()
        for writer in writers:
            writer.result()

    failed = [o for o in outcomes if o.record is None]
    committed = [o.record for o in outcomes if o.record is not None]
    print(
        f"kill: {len(committed)} records committed, {len(failed)} writes failed "
        f"({[o.error for o in failed]})"
    )
    # Only what was in flight when b died may fail: at most one write per writer, and none
    # started after the kill (the balancer passes those to a, as b refuses connections).
    assert len(failed) <= WRITERS
    assert not [o for o in failed if o.started_after_kill]
    assert sum(o.started_after_kill for o in outcomes) >= WRITERS * COMMITS_AFTER_KILL_PER_WRITER
    # Every record committed, before or after the kill, reads back through the balancer.
    response, results = release(
        dsl, [(r.record_id, r.version) for r in committed], include_urls=True
    )
    for record in committed:
        result = results[(record.record_id, record.version)]
        assert result["status"] == "granted", result
        assert dsl.open_key(response, result) == record.record_key
        assert httpx.get(result["download_url"], timeout=30.0).content == record.ciphertext
    # b was serving this load when it died.
    assert any(line.instances[-1:] == ("b",) for line in served_before_kill)
