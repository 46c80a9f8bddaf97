"""Fixtures of the SDK tests: the real key service, its two admins, and per test a fresh member
of staff assigned to a fresh child.

The service is the embedded one (SQLite, local blobs) in a process of its own, started once
per session; tests/e2e runs the production flavour too. Nothing here stands in for the key
service: a test that needs an answer the service would never give (a release without its
digest, an answer replayed) relays the real answers through ``relay`` and changes them on the
way, and a test that tampers with storage changes the stored file (``Office.stored``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import vault.format as fmt
from tests.e2e.world import second_admin
from tests.keyservice.helpers import bootstrap_code
from tests.servers import KeyService, KeyServiceFactory
from vault.client import Client, Proposal, RecordRef

MIB = 1024 * 1024
# An audit checkpoint is an object in the blob store too; none may appear between the two
# listings with which a test finds the object a put stored.
QUIET_STORE = {"CAREVAULT_CHECKPOINT_EVERY": "1000000000"}
# Every upload in parts of S3's smallest part size.
IN_PARTS = {
    **QUIET_STORE,
    "CAREVAULT_MULTIPART_THRESHOLD_BYTES": "0",
    "CAREVAULT_PART_SIZE_BYTES": str(5 * MIB),
}

Forward = Callable[[httpx.Request], httpx.Response]
Handler = Callable[[httpx.Request, Forward], httpx.Response]
# Headers that describe how the relayed body was framed or encoded on the real connection;
# the relayed answer carries the decoded body whole.
_FRAMING = {"content-encoding", "content-length", "transfer-encoding"}


def relay(handler: Handler | None = None) -> httpx.MockTransport:
    """A transport that sends every request on to the real servers over HTTP.

    ``handler(request, forward)`` sees each request: it may change it, answer it itself, or
    ``forward`` it and change the answer."""
    real = httpx.HTTPTransport()

    def forward(request: httpx.Request) -> httpx.Response:
        response = real.handle_request(request)
        try:
            content = response.read()
        finally:
            response.close()
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _FRAMING]
        return httpx.Response(response.status_code, headers=headers, content=content)

    chosen: Handler = handler or (lambda request, send: send(request))
    return httpx.MockTransport(lambda request: chosen(request, forward))


@dataclass
class Office:
    """A key service, its first admin, and a second admin independent of the first who
    approves what the first proposes (the two-person rule)."""

    service: KeyService
    admin: Client
    approver: Client

    @property
    def base_url(self) -> str:
        return self.service.base_url

    @property
    def blob_root(self) -> Path:
        return Path(self.service.env["CAREVAULT_BLOB_STORE"].removeprefix("local:"))

    def principal(self, *, kind: str = "staff", roles: tuple[str, ...] = ("educator",)) -> str:
        """A new person, with no device yet."""
        organisation = "Riverside Health" if kind == "external" else None
        return self.admin.create_principal(
            kind=kind, display_name="Test", roles=roles, organisation=organisation
        )

    def enrol(
        self,
        *,
        kind: str = "staff",
        roles: tuple[str, ...] = ("educator",),
        blob_client: httpx.Client | None = None,
    ) -> Client:
        """A new person with one enrolled device, and nothing to read yet."""
        issued = self.admin.enrolment_code(self.principal(kind=kind, roles=roles))
        assert not isinstance(issued, Proposal), "a new person's first code needs no approval"
        client, _identity = Client.enrol(
            self.base_url, issued.code, "test laptop", blob_client=blob_client
        )
        return client

    def approved(self, proposal: Proposal) -> str:
        """Have the second admin approve ``proposal``; the id of what it made."""
        assert proposal.pending, proposal
        decided = self.approver.approve(proposal.proposal_id)
        assert decided.state == "approved" and decided.result_id, decided
        return decided.result_id

    def child(self, *, name: str = "Ada") -> str:
        return self.admin.create_child(display_name=name, room="Robins")

    def assign(self, staff: Client, child_id: str, *, role: str = "educator") -> str:
        proposal = self.admin.assign(
            staff_id=staff.identity.principal_id, child_id=child_id, role=role
        )
        return self.approved(proposal)

    def child_of(self, staff: Client, *, role: str = "educator") -> str:
        """A new child, with ``staff`` assigned to them."""
        child_id = self.child()
        self.assign(staff, child_id, role=role)
        return child_id

    def add_guardian(self, guardian: Client, child_id: str) -> str:
        proposal = self.admin.add_guardian(
            guardian_id=guardian.identity.principal_id, child_id=child_id
        )
        return self.approved(proposal)

    def objects(self) -> set[Path]:
        """Every object in the blob store (not the digests the store keeps beside them)."""
        return {
            path
            for path in self.blob_root.glob("??/*")
            if path.is_file() and path.suffix != ".sha256"
        }

    def stored(self, put: Callable[[], RecordRef]) -> tuple[RecordRef, Path]:
        """Run ``put`` and return its record and the file its ciphertext was stored in."""
        before = self.objects()
        ref = put()
        (path,) = self.objects() - before
        return ref, path


def substitute_ciphertext(
    client: Client, record_id: str, plaintext: bytes, *, content_type: str = "text/plain"
) -> bytes:
    """A different, well-formed ciphertext of the record, as its creator can make with the
    record key it holds (and put through a still-valid upload URL, on S3)."""
    released = client._release_one(record_id, 1, include_url=False)
    out = io.BytesIO()
    fmt.encrypt(
        record_key=released.record_key,
        attributes=released.attributes,
        metadata=fmt.Metadata(file_name="", content_type=content_type, size=len(plaintext)),
        src=io.BytesIO(plaintext),
        dst=out,
    )
    # The substitute authenticates on its own: only the committed size and digest catch it.
    check = io.BytesIO()
    fmt.decrypt(
        record_key=released.record_key,
        attributes=released.attributes,
        src=io.BytesIO(out.getvalue()),
        dst=check,
    )
    assert check.getvalue() == plaintext
    return out.getvalue()


def start_office(factory: KeyServiceFactory, settings: dict[str, str]) -> Office:
    service = factory(flavour="embedded", extra_env=settings)
    admin, _identity = Client.enrol(service.base_url, bootstrap_code(service), "office")
    return Office(service=service, admin=admin, approver=second_admin(service, admin))


def _office(factory: KeyServiceFactory, settings: dict[str, str]) -> Iterator[Office]:
    started = start_office(factory, settings)
    yield started
    started.admin.close()
    started.approver.close()


@pytest.fixture(scope="session")
def office(keyservice_factory: KeyServiceFactory) -> Iterator[Office]:
    """The SDK tests' key service: uploads up to 64 MiB in one PUT."""
    yield from _office(keyservice_factory, QUIET_STORE)


@pytest.fixture(scope="session")
def office_in_parts(keyservice_factory: KeyServiceFactory) -> Iterator[Office]:
    """A key service that asks for every upload in 5 MiB parts."""
    yield from _office(keyservice_factory, IN_PARTS)


@pytest.fixture
def client(office: Office) -> Iterator[Client]:
    """A member of staff (an educator) with one device."""
    enrolled = office.enrol()
    yield enrolled
    enrolled.close()


@pytest.fixture
def child(office: Office, client: Client) -> str:
    """A new child, with ``client`` assigned as their educator."""
    return office.child_of(client)
