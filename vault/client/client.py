"""``vault.Client``: what a staff member, guardian, agency or admin does, as typed methods.

    client, identity = Client.enrol("https://vault.example.org", code, "office laptop")
    save_identity(path, identity, passphrase)            # later: Client(load_identity(...))
    ref = client.put(child_ids=[child], category="observation", path=Path("note.txt"))
    client.get(ref.record_id, dst=Path("note.txt"))

Records are encrypted and decrypted here, on this device; the key service only hands out
record keys sealed to this device and short-lived storage URLs.

``Client`` is assembled from one mixin per concern, so that its methods stay flat
(``client.put``, ``client.assign``) without forwarding code that could drift from them:

    reading.RecordReading        records, history, get, get_range (keys: release.KeyReleases)
    writing.RecordWriting        put, amend, delete
    admin.AdminCalls             people, their enrolment codes, children
    relationships.RelationshipCalls  assignments, guardianships, consents, court orders
    approvals.ApprovalCalls      proposals and their approval by a second person
    shares.ShareCalls            shares to outside recipients, and downloading one whole
    devices.DeviceCalls          this person's own devices and notifications

Each mixin declares what it uses of the client (``identity``, ``_api``, ``_blobs``); this
module owns only those, the device's enrolment, and who the device is. Every answer of the
key service is parsed once, at the transport, into ``vault.client.models`` (``wire``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from vault.client import wire
from vault.client.admin import AdminCalls
from vault.client.approvals import ApprovalCalls
from vault.client.blobs import new_blob_client
from vault.client.devices import DeviceCalls
from vault.client.identity import DeviceIdentity, DeviceKeys, b64encode
from vault.client.models import Child, Disclosure, Me
from vault.client.relationships import RelationshipCalls
from vault.client.retention import RetentionCalls
from vault.client.rooms import RoomCalls
from vault.client.rotation import RotationCalls
from vault.client.shares import ShareCalls
from vault.client.transport import KeyServiceTransport
from vault.client.writing import RecordWriting


class Client(
    RecordWriting,
    ShareCalls,
    AdminCalls,
    RoomCalls,
    RelationshipCalls,
    ApprovalCalls,
    DeviceCalls,
    RetentionCalls,
    RotationCalls,
):
    """One enrolled device talking to one key service.

    ``transport`` is the httpx transport to the key service, ``blob_client`` the httpx client
    for storage URLs, ``clock`` the Unix-seconds clock requests are signed with.
    """

    def __init__(
        self,
        identity: DeviceIdentity,
        *,
        transport: httpx.BaseTransport | None = None,
        blob_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._api = KeyServiceTransport.for_device(
            identity.service_url,
            device_id=identity.device_id,
            signing_key=identity.keys.signing_key,
            audience=identity.audience,
            clock=clock,
            transport=transport,
        )
        self._owns_blob_client = blob_client is None
        self._blobs = blob_client or new_blob_client()

    # --- lifecycle -----------------------------------------------------------------------

    @classmethod
    def enrol(
        cls,
        base_url: str,
        code: str,
        device_name: str,
        *,
        transport: httpx.BaseTransport | None = None,
        blob_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> tuple[Client, DeviceIdentity]:
        """Register a new device with a one-time code; its private keys never leave it."""
        keys = DeviceKeys.generate()
        unsigned = KeyServiceTransport(base_url, signer=None, transport=transport)
        try:
            answer = unsigned.post(
                "/v1/enrol",
                wire.enrolled,
                {
                    "code": code,
                    "device_name": device_name,
                    "signing_key": b64encode(keys.signing_public()),
                    "receiving_key": b64encode(keys.receiving_public()),
                },
            )
        finally:
            unsigned.close()
        identity = DeviceIdentity(
            service_url=unsigned.base_url,
            principal_id=answer.principal_id,
            device_id=answer.device_id,
            audience=answer.audience,
            keys=keys,
        )
        client = cls(identity, transport=transport, blob_client=blob_client, clock=clock)
        return client, identity

    def close(self) -> None:
        self._api.close()
        if self._owns_blob_client:
            self._blobs.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- who and whom ----------------------------------------------------------------------

    def whoami(self) -> Me:
        return self._api.get("/v1/me", wire.me)

    def children(self) -> list[Child]:
        """The children this principal has a current relationship with."""
        return self._api.get("/v1/children", wire.children)

    # --- reading --------------------------------------------------------------------------

    def disclosures(self, child_id: str) -> list[Disclosure]:
        """The disclosure log of a child: who was given which record, when and why."""
        return self._api.get(f"/v1/children/{child_id}/disclosures", wire.disclosures)

    # --- writing --------------------------------------------------------------------------
