"""Runs every file in tests/vectors/format through every decoding entry point."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

import vault.format as fmt
from tests.format.generate_vectors import VECTORS_DIR, build_vectors
from vault.format import (
    FormatError,
    IntegrityError,
    Metadata,
    RecordAttributes,
    UnsupportedVersionError,
)

VECTOR_FILES = sorted(VECTORS_DIR.glob("*.json"))
ERRORS: dict[str, type[Exception]] = {
    "format": FormatError,
    "unsupported": UnsupportedVersionError,
    "integrity": IntegrityError,
}


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert doc["name"] == path.stem
    return doc


def _decrypt(doc: dict[str, Any], out: io.BytesIO | None = None) -> tuple[Metadata, bytes]:
    out = io.BytesIO() if out is None else out
    meta = fmt.decrypt(
        record_key=bytes.fromhex(doc["record_key"]),
        attributes=RecordAttributes.parse(bytes.fromhex(doc["attributes"])),
        src=io.BytesIO(bytes.fromhex(doc["blob"])),
        dst=out,
    )
    return meta, out.getvalue()


def _decrypt_range(doc: dict[str, Any], start: int, length: int | None) -> bytes:
    """Decrypt [start, start+length) by range reads; length None means up to the end."""
    blob = bytes.fromhex(doc["blob"])
    key = bytes.fromhex(doc["record_key"])
    attributes = RecordAttributes.parse(bytes.fromhex(doc["attributes"]))

    def read_at(offset: int, n: int) -> bytes:
        return blob[offset : offset + n]

    header = fmt.open_header_at(record_key=key, attributes=attributes, read_at=read_at)
    out = io.BytesIO()
    fmt.decrypt_range(
        record_key=key,
        attributes=attributes,
        read_at=read_at,
        start=start,
        length=header.metadata.size - start if length is None else length,
        dst=out,
        header=header,
    )
    return out.getvalue()


# Range reads never look past the chunks they need, so bytes after the last chunk (which
# the streaming decoder rejects) are invisible to them, by design.
RANGE_BLIND = {"payload_trailing_byte", "payload_chunk_repeated_at_end"}


def test_the_corpus_is_complete() -> None:
    docs = [_load(path) for path in VECTOR_FILES]
    assert len(docs) >= 40
    expects = {doc["expect"] for doc in docs}
    assert expects == {"success", "format", "unsupported", "integrity"}


def test_the_generator_reproduces_the_committed_files() -> None:
    expected = build_vectors()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in VECTOR_FILES}
    assert on_disk == expected


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    doc = _load(path)
    if doc["expect"] == "success":
        meta, data = _decrypt(doc)
        assert meta == Metadata(**doc["metadata"])
        assert len(data) == doc["plaintext_size"]
        assert hashlib.sha256(data).hexdigest() == doc["plaintext_sha256"]
        if data:
            assert _decrypt_range(doc, 0, None) == data
            assert _decrypt_range(doc, len(data) - 1, 1) == data[-1:]
        return
    error = ERRORS[doc["expect"]]
    out = io.BytesIO()
    with pytest.raises(error) as info:
        _decrypt(doc, out)
    if not doc["name"].startswith("payload_"):
        assert out.getvalue() == b"", "plaintext was written before the header verified"
    if error is FormatError:
        assert not isinstance(info.value, UnsupportedVersionError)
    if "error_contains" in doc:
        assert doc["error_contains"] in str(info.value)
    if error is IntegrityError:
        assert str(info.value) == "record failed integrity check"
        assert info.value.__cause__ is not None
    if doc["name"] in RANGE_BLIND:
        return
    with pytest.raises(error):
        _decrypt_range(doc, 0, None)
