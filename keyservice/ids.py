"""Opaque ids: 16 random bytes written as 32 lowercase hex characters."""

from __future__ import annotations

import re
import secrets

ID_PATTERN = r"^[0-9a-f]{32}$"
_ID = re.compile(ID_PATTERN)


def new_id() -> str:
    return secrets.token_hex(16)


def is_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))
