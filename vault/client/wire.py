"""The JSON of docs/API.md turned into the SDK's typed models, and back (times, optional
fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vault.client.models import DeviceInfo, EnrolmentCode, Notification, Proposal


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def optional_time(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)


def wire_time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def drop_none(body: dict[str, object]) -> dict[str, object]:
    return {name: value for name, value in body.items() if value is not None}


def enrolment_code(body: dict[str, Any]) -> EnrolmentCode:
    return EnrolmentCode(code=str(body["code"]), expires_at=parse_time(str(body["expires_at"])))


def proposal(body: dict[str, Any]) -> Proposal:
    code = body.get("enrolment_code")
    code_expires = body.get("code_expires_at")
    return Proposal(
        proposal_id=str(body["proposal_id"]),
        action=str(body["action"]),
        state=str(body["state"]),
        child_id=body.get("child_id"),
        beneficiary_id=body.get("beneficiary_id"),
        beneficiary_vouched_by=tuple(body.get("beneficiary_vouched_by") or ()),
        payload=dict(body.get("payload") or {}),
        proposed_by=str(body["proposed_by"]),
        proposed_device=body.get("proposed_device"),
        proposed_at=parse_time(str(body["proposed_at"])),
        expires_at=parse_time(str(body["expires_at"])),
        decided_by=body.get("decided_by"),
        decided_device=body.get("decided_device"),
        decided_at=optional_time(body.get("decided_at")),
        result_id=body.get("result_id"),
        reason=body.get("reason"),
        enrolment_code=(
            EnrolmentCode(code=str(code), expires_at=parse_time(str(code_expires)))
            if code and code_expires
            else None
        ),
    )


def device(body: dict[str, Any]) -> DeviceInfo:
    return DeviceInfo(
        device_id=str(body["device_id"]),
        name=str(body["name"]),
        created_at=parse_time(str(body["created_at"])),
        revoked_at=optional_time(body.get("revoked_at")),
        origin=str(body["origin"]),
        approved_by=body.get("approved_by"),
        current=bool(body.get("current", False)),
    )


def notification(body: dict[str, Any]) -> Notification:
    return Notification(
        notification_id=str(body["notification_id"]),
        at=parse_time(str(body["at"])),
        kind=str(body["kind"]),
        detail=dict(body.get("detail") or {}),
    )
