"""The authenticated caller of a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """The authenticated principal and device of this request."""

    principal_id: str
    device_id: str
    kind: str
    roles: frozenset[str]
    display_name: str
    organisation: str | None
    receiving_key: bytes
    nonce: str

    def has_role(self, *roles: str) -> bool:
        return self.kind == "staff" and bool(self.roles.intersection(roles))
