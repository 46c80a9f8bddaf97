"""A small nursery on a real key service process, for the end-to-end tests.

Everyone enrols through the real flow with the SDK: the first admin with the code that
``carevault-keyservice bootstrap`` prints (read by tests/keyservice/helpers.py), everyone else
with a code the admin issues. What gives read rights (assignments, guardianships) the admin
only proposes; ``World.approver``, a second admin whose proposal was approved at the host (so
the first admin never saw its code), approves them: the two-person rule of
docs/decisions/0004-admins-cannot-read.md.
``Storage`` reads the service's blob store directly (the local directory or the S3 bucket) so
that tests can scan and tamper with what is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.keyservice.helpers import bootstrap_code, host_approve
from tests.servers import KeyService
from vault.client import Client, Proposal

_HOST_CODE = re.compile(r"enrolment code .*: ([A-Z2-7-]+)\s*$", re.MULTILINE)


class Storage:
    """Every object the service stored, read straight from its backend."""

    def __init__(self, service: KeyService) -> None:
        self._location = service.env["CAREVAULT_BLOB_STORE"]
        self._service = service

    def _s3(self) -> tuple[Any, str]:
        bucket = self._service.s3_bucket()
        return bucket.client(), bucket.bucket

    def objects(self) -> dict[str, bytes]:
        """Name -> bytes of every stored object, unfinished uploads' parts included (not the
        local store's ``.sha256`` files: they hold the digest it computed of an object)."""
        if self._location.startswith("local:"):
            root = Path(self._location.removeprefix("local:"))
            return {
                str(path.relative_to(root)): path.read_bytes()
                for path in root.rglob("*")
                if path.is_file() and path.suffix != ".sha256"
            }
        client, bucket = self._s3()
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[item["Key"]] = body
        return found

    def user_metadata(self) -> dict[str, dict[str, str]]:
        """Each S3 object's user metadata (the local store keeps none)."""
        if self._location.startswith("local:"):
            return {}
        client, bucket = self._s3()
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                head = client.head_object(Bucket=bucket, Key=item["Key"])
                found[item["Key"]] = dict(head.get("Metadata", {}))
        return found

    def flip_byte(self, name: str, offset: int) -> None:
        """Change one byte of a stored object in place."""
        if self._location.startswith("local:"):
            path = Path(self._location.removeprefix("local:")) / name
            data = bytearray(path.read_bytes())
            data[offset] ^= 0x01
            path.write_bytes(bytes(data))
            return
        client, bucket = self._s3()
        data = bytearray(client.get_object(Bucket=bucket, Key=name)["Body"].read())
        data[offset] ^= 0x01
        client.put_object(Bucket=bucket, Key=name, Body=bytes(data))


@dataclass
class World:
    """A nursery: two rooms, three children, two educators, a DSL, a guardian, an admin who
    proposes, and a second admin who approves."""

    service: KeyService
    admin: Client
    approver: Client
    storage: Storage
    people: dict[str, Client] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    children: dict[str, str] = field(default_factory=dict)

    def code_for(self, name: str, *, kind: str, roles: tuple[str, ...] = ()) -> str:
        """A new person and the code the admin issues for their first device (enrol it
        before they are given rights: a code an admin issued alone is stale after that)."""
        principal = self.admin.create_principal(kind=kind, display_name=name, roles=roles)
        self.ids[name] = principal
        issued = self.admin.enrolment_code(principal)
        assert not isinstance(issued, Proposal), "a new person's first code needs no approval"
        return issued.code

    def approved(self, proposal: Proposal) -> str:
        """Have the second admin approve ``proposal``; the id of what it made."""
        assert proposal.pending, proposal
        decided = self.approver.approve(proposal.proposal_id)
        assert decided.state == "approved" and decided.result_id, decided
        return decided.result_id

    def assign(self, name: str, child_id: str, *, role: str = "educator") -> str:
        """Assign the named person to a child: the admin proposes, the second admin approves."""
        return self.approved(
            self.admin.assign(staff_id=self.ids[name], child_id=child_id, role=role)
        )

    def add_guardian(self, name: str, child_id: str) -> str:
        return self.approved(self.admin.add_guardian(guardian_id=self.ids[name], child_id=child_id))

    def person(self, name: str, *, kind: str, roles: tuple[str, ...] = ()) -> Client:
        code = self.code_for(name, kind=kind, roles=roles)
        client, _identity = Client.enrol(self.service.base_url, code, f"{name}'s laptop")
        self.people[name] = client
        return client

    def close(self) -> None:
        for client in [self.admin, self.approver, *self.people.values()]:
            client.close()


def second_admin(service: KeyService, admin: Client) -> Client:
    """An admin proposed by ``admin`` and approved at the host, which prints the new admin's
    code: ``admin`` never saw it, so the two are independent of each other."""
    proposal = admin.propose_admin(display_name="Second Admin")
    found = _HOST_CODE.search(host_approve(service, proposal.proposal_id))
    assert found is not None, "approving a new admin at the host prints their code"
    client, _identity = Client.enrol(service.base_url, found.group(1), "second office")
    return client


def build_world(service: KeyService) -> World:
    admin, _ = Client.enrol(service.base_url, bootstrap_code(service), "office")
    world = World(
        service=service,
        admin=admin,
        approver=second_admin(service, admin),
        storage=Storage(service),
    )
    world.person("amira", kind="staff", roles=("educator",))
    world.person("ben", kind="staff", roles=("educator",))
    world.person("dana", kind="staff", roles=("dsl",))
    world.person("grace", kind="guardian")
    for name, room in (("ava", "Robins"), ("noah", "Robins"), ("leo", "Wrens")):
        world.children[name] = admin.create_child(display_name=name.title(), room=room)
    kids = world.children
    for child in ("ava", "noah"):
        world.assign("amira", kids[child])
    world.assign("ben", kids["leo"])
    for child in kids.values():
        world.assign("dana", child, role="dsl")
    world.add_guardian("grace", kids["ava"])
    return world
