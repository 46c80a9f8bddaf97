"""Typed answers of the SDK. Record metadata here is already decrypted on this device."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vault.format import Category


@dataclass(frozen=True)
class Me:
    """Who this device is to the key service."""

    principal_id: str
    device_id: str
    kind: str
    display_name: str
    roles: tuple[str, ...]
    organisation: str | None


@dataclass(frozen=True)
class Child:
    """A child the caller has a current relationship with."""

    child_id: str
    display_name: str
    room: str | None
    relation: str


@dataclass(frozen=True)
class RecordRef:
    """One committed record version."""

    record_id: str
    version: int


@dataclass(frozen=True)
class RecordInfo:
    """A record version as listed, with its metadata decrypted on this device."""

    record_id: str
    version: int
    category: Category
    child_ids: tuple[str, ...]
    withheld_from_guardians: bool
    created_at: datetime
    created_by: str
    file_name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Disclosure:
    """One entry of a child's disclosure log (606 CMR 7.04(12)(d))."""

    at: datetime
    decision: str
    principal_id: str
    principal_name: str | None
    record_id: str | None
    version: int | None
    basis: str | None
    detail: dict[str, object]
