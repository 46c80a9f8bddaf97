"""Small secret files the service keeps in its data directory (blob token key, audit key).

Created on first start with mode 0600; a file that group or others can read is refused,
like the root key file.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from keyservice.errors import InsecureKeyFileError, RootKeyError


def load_or_create_secret(path: Path, *, size: int = 32) -> bytes:
    """The ``size`` random bytes in ``path``, creating the file (0600) if it is missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InsecureKeyFileError(
                f"{path} is readable or writable by group or others; run chmod 600 {path}"
            ) from None
        data = path.read_bytes()
        if len(data) != size:
            raise RootKeyError(
                f"{path} is not a {size}-byte key file; restore it from backup"
            ) from None
        return data
    data = secrets.token_bytes(size)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return data
