"""The administrative calls of ``vault.Client``: people, children and relationships.

Admin rights never imply read rights; these calls manage who may read, not what is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vault.client.transport import KeyServiceTransport


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _drop_none(body: dict[str, object]) -> dict[str, object]:
    return {name: value for name, value in body.items() if value is not None}


class AdminCalls:
    """Mixed into ``Client``; every call is signed by the client's device."""

    _api: KeyServiceTransport

    def create_principal(
        self,
        *,
        kind: str,
        display_name: str,
        roles: Sequence[str] = (),
        organisation: str | None = None,
    ) -> str:
        """Add a staff member, guardian or external recipient; returns the principal id."""
        body = _drop_none(
            {
                "kind": kind,
                "display_name": display_name,
                "roles": list(roles),
                "organisation": organisation,
            }
        )
        return str(self._api.post("/v1/admin/principals", body)["principal_id"])

    def enrolment_code(self, principal_id: str) -> tuple[str, datetime]:
        """A single-use code (valid 24 h) with which the principal enrols a device."""
        answer = self._api.post(f"/v1/admin/principals/{principal_id}/enrolment-codes")
        expires = datetime.fromisoformat(str(answer["expires_at"]).replace("Z", "+00:00"))
        return str(answer["code"]), expires

    def revoke_principal(self, principal_id: str) -> None:
        """Revoke the principal and every device it has, at once."""
        self._api.post(f"/v1/admin/principals/{principal_id}/revoke")

    def revoke_device(self, device_id: str) -> None:
        """Revoke one device (an admin's right, or the device's own principal's)."""
        self._api.post(f"/v1/admin/devices/{device_id}/revoke")

    def create_child(self, *, display_name: str, room: str | None = None) -> str:
        body = _drop_none({"display_name": display_name, "room": room})
        return str(self._api.post("/v1/admin/children", body)["child_id"])

    def assign(
        self,
        *,
        staff_id: str,
        child_id: str,
        role: str = "educator",
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
    ) -> str:
        """Assign a member of staff to a child (educator, manager or dsl)."""
        body = _drop_none(
            {
                "staff_id": staff_id,
                "child_id": child_id,
                "role": role,
                "valid_from": _time(valid_from),
                "valid_to": _time(valid_to),
            }
        )
        return str(self._api.post("/v1/admin/assignments", body)["assignment_id"])

    def end_assignment(self, assignment_id: str) -> None:
        self._api.post(f"/v1/admin/assignments/{assignment_id}/end")

    def add_guardian(
        self, *, guardian_id: str, child_id: str, parental_responsibility: bool = True
    ) -> str:
        body = {
            "guardian_id": guardian_id,
            "child_id": child_id,
            "parental_responsibility": parental_responsibility,
        }
        return str(self._api.post("/v1/admin/guardianships", body)["guardianship_id"])

    def record_consent(
        self,
        *,
        child_id: str,
        given_by: str,
        recipient_id: str,
        categories: Sequence[str],
        purpose: str,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        evidence_record_id: str | None = None,
    ) -> str:
        """Record a guardian's written consent to share some categories with a recipient."""
        body = _drop_none(
            {
                "child_id": child_id,
                "given_by": given_by,
                "recipient_id": recipient_id,
                "categories": list(categories),
                "purpose": purpose,
                "valid_from": _time(valid_from),
                "valid_to": _time(valid_to),
                "evidence_record_id": evidence_record_id,
            }
        )
        return str(self._api.post("/v1/consents", body)["consent_id"])

    def withdraw_consent(self, consent_id: str) -> None:
        self._api.post(f"/v1/consents/{consent_id}/withdraw")

    def record_court_order(
        self,
        *,
        child_id: str,
        effect: str,
        subject_id: str,
        categories: Sequence[str],
        reference: str,
        valid_from: datetime,
        valid_to: datetime,
        evidence_record_id: str | None = None,
    ) -> str:
        """Record a court order that discloses to, or restricts, one principal."""
        body = _drop_none(
            {
                "child_id": child_id,
                "effect": effect,
                "subject_id": subject_id,
                "categories": list(categories),
                "reference": reference,
                "valid_from": _time(valid_from),
                "valid_to": _time(valid_to),
                "evidence_record_id": evidence_record_id,
            }
        )
        return str(self._api.post("/v1/court-orders", body)["court_order_id"])
