"""Object names: random and opaque, never derived from ids, names or dates.

A name is 32 lowercase hex characters (128 random bits). Storage sees nothing else about a
record, so the name must carry no meaning; and since local paths are built from names, the
strict pattern is also what keeps every path inside its store's root.
"""

from __future__ import annotations

import re
import secrets
from typing import TypeGuard

from vault.storage.errors import InvalidObjectName

NAME_BYTES = 16
_NAME = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(r"[0-9a-f]{0,32}")


def new_object_name() -> str:
    """A fresh random object name."""
    return secrets.token_hex(NAME_BYTES)


def is_object_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a well-formed object name."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_object_name(name: object) -> str:
    """Return ``name`` if it is a well-formed object name, else raise InvalidObjectName."""
    if not is_object_name(name):
        raise InvalidObjectName("object names are 32 lowercase hex characters")
    return name


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start an object name, else raise InvalidObjectName."""
    if _PREFIX.fullmatch(prefix) is None:
        raise InvalidObjectName("a name prefix is at most 32 lowercase hex characters")
    return prefix
