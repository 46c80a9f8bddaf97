"""A person's own devices and notifications, as calls of ``vault.Client``."""

from __future__ import annotations

from vault.client import wire
from vault.client.models import DeviceInfo, EnrolmentCode, Notification
from vault.client.transport import KeyServiceTransport


class DeviceCalls:
    """Mixed into ``Client``; every call is signed by the client's device."""

    _api: KeyServiceTransport

    def add_device_code(self) -> EnrolmentCode:
        """A single-use code to enrol another device of this person's own, issued from this
        device: nobody else sees it, and it cannot be used once this device is revoked."""
        return self._api.post("/v1/me/enrolment-codes", wire.enrolment_code)

    def devices(self) -> list[DeviceInfo]:
        """Every device enrolled for this person, revoked ones included, newest first."""
        return self._api.get("/v1/me/devices", wire.devices)

    def revoke_device(self, device_id: str) -> None:
        """Revoke one device at once (one of this person's own, or anyone's for an admin)."""
        self._api.post(f"/v1/admin/devices/{device_id}/revoke", wire.nothing)

    def notifications(self) -> list[Notification]:
        """What the key service told this person about their account, newest first."""
        return self._api.get("/v1/me/notifications", wire.notifications)
