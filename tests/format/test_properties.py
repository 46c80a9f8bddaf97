"""Hypothesis properties of the record format: round trips, and no forged byte ever decrypts."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vault.format as fmt
from tests.format.blobs import encrypted_blob
from vault.format import (
    IntegrityError,
    RecordAttributes,
    VaultFormatError,
)

KEY = bytes(range(32))
ATTRS = RecordAttributes(
    record_id=b"\x07" * 16, version=1, child_ids=(b"\x01" * 16,), category="incident"
)
CHUNK_SIZES = st.sampled_from([4096, 8192, 16384])
# Fields after the child ids that a decoder must treat as authenticated-only: salt,
# commitment, encrypted metadata and MAC. (Magic, version, category, child count, suite,
# chunk exponent and metadata length are parsed first and may be refused as malformed.)
_SALT_AT = 8 + len(ATTRS.canonical()) + 2


def _blob(data: bytes, chunk_size: int) -> bytes:
    return encrypted_blob(
        data,
        record_key=KEY,
        attributes=ATTRS,
        chunk_size=chunk_size,
        file_name="n.bin",
        content_type="application/octet-stream",
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(min_value=0, max_value=5 * 16384 + 3),
    chunk_size=CHUNK_SIZES,
    seed=st.binary(min_size=1, max_size=64),
)
def test_round_trip(size: int, chunk_size: int, seed: bytes) -> None:
    data = (seed * (size // len(seed) + 1))[:size]
    blob = _blob(data, chunk_size)
    out = io.BytesIO()
    meta = fmt.decrypt(record_key=KEY, attributes=ATTRS, src=io.BytesIO(blob), dst=out)
    assert out.getvalue() == data
    assert meta.size == size


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * 4096 + 10),
    position=st.floats(min_value=0, max_value=1, exclude_max=True),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_changed_byte_fails_and_releases_only_true_plaintext(
    size: int, position: float, mask: int
) -> None:
    data = bytes(i % 253 for i in range(size))
    blob = bytearray(_blob(data, 4096))
    offset = int(position * len(blob))
    blob[offset] ^= mask
    out = io.BytesIO()
    header_size = len(blob) - size - 16 * max(1, -(-size // 4096))
    metadata_length_at = _SALT_AT + 64
    authenticated_only = _SALT_AT <= offset < metadata_length_at or offset >= metadata_length_at + 2
    expected = IntegrityError if authenticated_only else VaultFormatError
    try:
        fmt.decrypt(record_key=KEY, attributes=ATTRS, src=io.BytesIO(bytes(blob)), dst=out)
    except expected:
        pass
    else:
        raise AssertionError(f"a change at byte {offset} of {len(blob)} was not detected")
    assert data.startswith(out.getvalue())
    if offset < header_size:
        assert out.getvalue() == b""
