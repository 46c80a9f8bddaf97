"""Whole record blobs made in memory, for the format's tests and its fuzz target."""

from __future__ import annotations

import io

import vault.format as fmt
from vault.format import Metadata, RecordAttributes


def encrypted_blob(
    data: bytes,
    *,
    record_key: bytes,
    attributes: RecordAttributes,
    chunk_size: int,
    file_name: str,
    content_type: str,
) -> bytes:
    """``data`` encrypted by ``vault.format.encrypt``, with metadata naming it ``file_name``."""
    out = io.BytesIO()
    fmt.encrypt(
        record_key=record_key,
        attributes=attributes,
        metadata=Metadata(file_name=file_name, content_type=content_type, size=len(data)),
        src=io.BytesIO(data),
        dst=out,
        chunk_size=chunk_size,
    )
    return out.getvalue()
