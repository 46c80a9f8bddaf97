"""Talking to a real key service in tests: enrol devices through the real flow, sign requests.

    admin = bootstrap_admin(service)                 # carevault-keyservice bootstrap + enrol
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:                   # an httpx.Client signing every request
        http.get("/v1/me")

The SDK tests use these too; nothing here reaches into the service's database.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import Connection

from tests.servers import KeyService, run_keyservice_command
from vault.format import RecordAttributes
from vault.sealing import BatchOpener
from vault.signing import RequestSigner, request_nonce, sealing_context

_CODE = re.compile(r"enrolment code .*: ([A-Z2-7-]+)\s*$", re.MULTILINE)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass
class Device:
    """An enrolled device: its ids, its private keys and the service it belongs to."""

    base_url: str
    principal_id: str
    device_id: str
    audience: str
    signing_key: Ed25519PrivateKey
    receiving_key: X25519PrivateKey

    def signer(self, clock: Callable[[], float] | None = None) -> RequestSigner:
        if clock is None:
            return RequestSigner(self.device_id, self.signing_key, self.audience)
        return RequestSigner(self.device_id, self.signing_key, self.audience, clock=clock)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the service that signs every request with this device."""
        return httpx.Client(base_url=self.base_url, auth=self.signer(), timeout=30.0, **kwargs)

    def open_key(self, response: httpx.Response, item: dict[str, Any]) -> bytes:
        """Unseal one released (or created) record key from a response of this device."""
        body = response.json()
        opener = BatchOpener(
            recipient_private=self.receiving_key,
            ephemeral_public=unb64(body["ephemeral_public"]),
            context=sealing_context(self.device_id, request_nonce(response.request)),
        )
        raw = item["attributes"]
        attributes = RecordAttributes.from_hex(
            record_id=raw["record_id"],
            version=raw["version"],
            child_ids=raw["child_ids"],
            category=raw["category"],
        )
        return opener.open(unb64(item["sealed_key"]), aad=attributes.canonical())


def enrol(base_url: str, code: str, *, device_name: str = "test device") -> Device:
    """Enrol fresh device keys with a one-time code through ``POST /v1/enrol``."""
    signing = Ed25519PrivateKey.generate()
    receiving = X25519PrivateKey.generate()
    response = httpx.post(
        f"{base_url}/v1/enrol",
        json={
            "code": code,
            "device_name": device_name,
            "signing_key": b64(_raw(signing)),
            "receiving_key": b64(_raw(receiving)),
        },
        timeout=30.0,
    )
    response.raise_for_status()
    body = response.json()
    return Device(
        base_url=base_url,
        principal_id=body["principal_id"],
        device_id=body["device_id"],
        audience=body["audience"],
        signing_key=signing,
        receiving_key=receiving,
    )


def bootstrap_code(service: KeyService, *, force_new_code: bool = False) -> str:
    """Run ``carevault-keyservice bootstrap`` on the service's host and return the code."""
    args = ["bootstrap", "--force-new-code"] if force_new_code else ["bootstrap"]
    output = run_keyservice_command(service.env, *args).stdout
    found = _CODE.search(output)
    assert found is not None, output
    return found.group(1)


# Each service's first admin and the second admin who approves what the first proposes.
_SERVICES: dict[str, KeyService] = {}
_APPROVERS: dict[str, Device] = {}


def bootstrap_admin(service: KeyService) -> Device:
    """The first admin's device, enrolled with the bootstrap code (a new code if one exists)."""
    try:
        code = bootstrap_code(service)
    except Exception:
        code = bootstrap_code(service, force_new_code=True)
    _SERVICES[service.base_url] = service
    _APPROVERS.pop(service.base_url, None)
    return enrol(service.base_url, code, device_name="admin device")


def host_approve(service: KeyService, proposal_id: str) -> str:
    """Approve a proposal with ``carevault-keyservice proposals approve``; its output."""
    return run_keyservice_command(service.env, "proposals", "approve", proposal_id).stdout


def host_code(service: KeyService, principal_id: str) -> str:
    """An enrolment code issued at the host (``carevault-keyservice enrolment-code``)."""
    output = run_keyservice_command(service.env, "enrolment-code", principal_id).stdout
    found = _CODE.search(output)
    assert found is not None, output
    return found.group(1)


def verify_audit(service: KeyService, *, exit_code: int) -> str:
    """Run ``carevault-keyservice audit verify`` at the host, check that it exits with
    ``exit_code`` (0: the chain holds), and return what it said."""
    result = run_keyservice_command(service.env, "audit", "verify", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    return output


def second_admin(service: KeyService, admin: Device) -> Device:
    """Another admin, proposed by ``admin`` and approved at the host, whose code ``admin``
    never saw: independent of ``admin``, so it may approve what ``admin`` proposes."""
    with admin.client() as http:
        proposal = ok(
            http.post(
                "/v1/admin/principals",
                json={"kind": "staff", "display_name": "Second Admin", "roles": ["admin"]},
            )
        )
    found = _CODE.search(host_approve(service, proposal["proposal_id"]))
    assert found is not None
    return enrol(service.base_url, found.group(1), device_name="second admin device")


def approver_for(admin: Device) -> Device:
    """The second admin of ``admin``'s service (made the first time it is needed)."""
    if admin.base_url not in _APPROVERS:
        _APPROVERS[admin.base_url] = second_admin(_SERVICES[admin.base_url], admin)
    return _APPROVERS[admin.base_url]


def approve(approver: Device, proposal_id: str) -> Any:
    """Approve a proposal as ``approver``; the decided proposal."""
    with approver.client() as http:
        return ok(http.post(f"/v1/proposals/{proposal_id}/approve"))


def proposed_and_approved(admin: Device, path: str, body: dict[str, Any]) -> str:
    """Propose a change as ``admin`` and have the second admin approve it; its result id."""
    with admin.client() as http:
        response = http.post(path, json=body)
    assert response.status_code == 202, f"{response.status_code}: {response.text}"
    return str(approve(approver_for(admin), response.json()["proposal_id"])["result_id"])


def ok(response: httpx.Response) -> Any:
    """The JSON body of a successful response; the problem detail in the failure otherwise."""
    assert response.is_success, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def create_principal(
    admin: Device,
    *,
    kind: str,
    roles: list[str] | None = None,
    organisation: str | None = None,
    display_name: str = "Test Person",
) -> str:
    """Create a principal (no device, no code) as ``admin``; its id."""
    with admin.client() as http:
        created = http.post(
            "/v1/admin/principals",
            json={
                "kind": kind,
                "display_name": display_name,
                "roles": roles or [],
                "organisation": organisation,
            },
        )
    return str(ok(created)["principal_id"])


def issue_code(admin: Device, principal_id: str) -> str:
    """A first enrolment code for ``principal_id``, issued by ``admin`` (who thereby saw it)."""
    with admin.client() as http:
        return str(ok(http.post(f"/v1/admin/principals/{principal_id}/enrolment-codes"))["code"])


def admin_enrols(service: KeyService, admin: Device, **person: Any) -> Device:
    """Create a principal as ``admin`` (``person``: ``create_principal``'s keywords), issue a
    code, and enrol a device with it."""
    principal_id = create_principal(admin, **person)
    return enrol(service.base_url, issue_code(admin, principal_id))


def own_code(device: Device) -> str:
    """An enrolment code the device's owner asks for, to add another device of their own."""
    with device.client() as http:
        return str(ok(http.post("/v1/me/enrolment-codes"))["code"])


def refused_enrolment(service: KeyService, code: str) -> httpx.Response:
    """The service's answer to an enrolment with ``code`` that it must refuse."""
    with pytest.raises(httpx.HTTPStatusError) as refused:
        enrol(service.base_url, code)
    return refused.value.response


def create_child(admin: Device, *, room: str = "room 1") -> str:
    with admin.client() as http:
        return str(
            ok(http.post("/v1/admin/children", json={"display_name": "Child", "room": room}))[
                "child_id"
            ]
        )


def assign(admin: Device, *, staff_id: str, child_id: str, role: str) -> str:
    """Assign staff to a child: proposed by ``admin``, approved by a second admin."""
    return proposed_and_approved(
        admin,
        "/v1/admin/assignments",
        {"staff_id": staff_id, "child_id": child_id, "role": role},
    )


def assigned_staff(
    service: KeyService, admin: Device, *, role: str = "educator"
) -> tuple[Device, str]:
    """A new child and a new member of staff with ``role``, assigned to the child in it."""
    child = create_child(admin)
    staff = admin_enrols(service, admin, kind="staff", roles=[role])
    assign(admin, staff_id=staff.principal_id, child_id=child, role=role)
    return staff, child


def add_guardian(admin: Device, *, guardian_id: str, child_id: str) -> str:
    """Make a guardian of a child: proposed by ``admin``, approved by a second admin."""
    return proposed_and_approved(
        admin,
        "/v1/admin/guardianships",
        {"guardian_id": guardian_id, "child_id": child_id, "parental_responsibility": True},
    )


@dataclass(frozen=True)
class StoredRecord:
    record_id: str
    version: int
    record_key: bytes
    ciphertext: bytes


def pending_version(
    device: Device,
    *,
    child_ids: list[str],
    category: str = "observation",
    ciphertext_size: int = 4,
) -> dict[str, Any]:
    """Create a record whose first version is pending (nothing uploaded or committed yet); the
    service's answer, with the upload plan."""
    with device.client() as http:
        created = http.post(
            "/v1/records",
            json={"child_ids": child_ids, "category": category, "ciphertext_size": ciphertext_size},
        )
    return dict(ok(created))


def upload_whole(created: dict[str, Any], ciphertext: bytes) -> None:
    """PUT ``ciphertext`` to a pending version's single upload URL."""
    upload = created["upload"]
    assert upload["method"] == "single"
    put = httpx.put(upload["url"], content=ciphertext, timeout=30.0)
    assert put.is_success, put.text


def commit_claim(ciphertext: bytes, **fields: Any) -> dict[str, Any]:
    """A commit's body claiming ``ciphertext``'s size and SHA-256, with sealed metadata (a
    stand-in); ``fields`` add to it or replace what it claims."""
    return {
        "ciphertext_size": len(ciphertext),
        "ciphertext_sha256": b64(hashlib.sha256(ciphertext).digest()),
        "encrypted_metadata": b64(b"sealed metadata stand-in"),
        **fields,
    }


def commit(device: Device, created: dict[str, Any], claim: dict[str, Any]) -> httpx.Response:
    """Commit the pending version ``created`` with ``claim`` (see ``commit_claim``); the answer."""
    with device.client() as http:
        return http.post(
            f"/v1/records/{created['record_id']}/versions/{created['version']}/commit", json=claim
        )


def put_record(
    device: Device,
    *,
    child_ids: list[str],
    category: str = "observation",
    ciphertext: bytes = b"opaque ciphertext bytes",
    withheld_from_guardians: bool = False,
    amend: str | None = None,
) -> StoredRecord:
    """Create (or amend) a record, upload ``ciphertext`` to its URL, and commit it.

    The bytes stand in for a real record: the service only checks size and digest.
    """
    with device.client() as http:
        response = http.post(
            f"/v1/records/{amend}/versions" if amend else "/v1/records",
            json={
                "child_ids": child_ids,
                "category": category,
                "withheld_from_guardians": withheld_from_guardians,
                "ciphertext_size": len(ciphertext),
            },
        )
    created = ok(response)
    record_key = device.open_key(response, created)
    upload_whole(created, ciphertext)
    ok(commit(device, created, commit_claim(ciphertext)))
    return StoredRecord(created["record_id"], created["version"], record_key, ciphertext)


def release(
    device: Device, items: list[tuple[str, int]], *, include_urls: bool = False
) -> tuple[httpx.Response, dict[tuple[str, int], dict[str, Any]]]:
    """Ask for keys; return the response and each item's result by (record_id, version)."""
    with device.client() as http:
        response = http.post(
            "/v1/keys/release",
            json={
                "items": [{"record_id": r, "version": v} for r, v in items],
                "include_urls": include_urls,
            },
        )
    body = ok(response)
    return response, {(r["record_id"], r["version"]): r for r in body["results"]}


def sqlite_synchronous(connection: Connection) -> int:
    """The SQLite connection's ``PRAGMA synchronous`` level (2 is FULL), read on the driver's
    connection so that it starts no transaction."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    level: int = raw.execute("PRAGMA synchronous").fetchone()[0]
    return level


@dataclass(frozen=True)
class Room:
    """A child with an assigned educator, an assigned DSL and a guardian, and a second child in
    another room whom none of them is related to."""

    child: str
    other_child: str
    educator: Device
    dsl: Device
    guardian: Device


def make_room(service: KeyService, admin: Device) -> Room:
    """Create a :class:`Room` on ``service``: ``admin`` proposes, a second admin approves."""
    child = create_child(admin)
    other_child = create_child(admin, room="room 2")
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    dsl = admin_enrols(service, admin, kind="staff", roles=["dsl"])
    guardian = admin_enrols(service, admin, kind="guardian")
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    assign(admin, staff_id=dsl.principal_id, child_id=child, role="dsl")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    return Room(child=child, other_child=other_child, educator=educator, dsl=dsl, guardian=guardian)


def guardian_consent(
    guardian: Device,
    *,
    child_id: str,
    recipient_id: str,
    categories: list[str],
    purpose: str,
) -> str:
    """A guardian's own written consent to share ``categories`` of their child with a
    recipient (it takes effect at once); its id."""
    with guardian.client() as http:
        made = ok(
            http.post(
                "/v1/consents",
                json={
                    "child_id": child_id,
                    "given_by": guardian.principal_id,
                    "recipient_id": recipient_id,
                    "categories": categories,
                    "purpose": purpose,
                },
            )
        )
    return str(made["consent_id"])
