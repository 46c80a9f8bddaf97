"""Bounded integers for paths and bodies (docs/API.md).

Every integer a caller sends is bounded here, so that none reaches the database out of the
range its column holds: such a number is a 422 before any work, never a driver's overflow
(a 500 on SQLite, a 503 on PostgreSQL).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vault.storage import MAX_OBJECT_SIZE

# Versions are INTEGER columns: 32-bit signed on PostgreSQL.
MAX_VERSION = 2**31 - 1

Version = Annotated[int, Field(ge=1, le=MAX_VERSION, description="a record version, from 1")]
ByteCount = Annotated[
    int,
    Field(ge=1, le=MAX_OBJECT_SIZE, description="a ciphertext's size in bytes (at most 5 TiB)"),
]
