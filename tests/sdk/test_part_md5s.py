"""PartMd5s: the MD5 of each uploaded piece, from the bytes the encryptor writes (decision 0008)."""

from __future__ import annotations

import hashlib
import io
import os
from typing import BinaryIO, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.client.blobs import PartMd5s
from vault.client.models import MultipartUpload, SingleUpload


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _pieces(data: bytes, part_size: int) -> list[bytes]:
    return [data[at : at + part_size] for at in range(0, len(data), part_size)]


@given(
    data=st.binary(min_size=1, max_size=2000),
    part_size=st.integers(min_value=1, max_value=700),
    write_sizes=st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=20),
    threaded=st.booleans(),
)
def test_md5s_are_per_part_whatever_the_write_sizes(
    data: bytes, part_size: int, write_sizes: list[int], threaded: bool
) -> None:
    sink = io.BytesIO()
    md5s = PartMd5s(cast(BinaryIO, sink), part_size, threaded=threaded)
    # Like the encryptor: one buffer, rewritten after every write.
    buffer = bytearray(max(write_sizes))
    at, turn = 0, 0
    try:
        while at < len(data):
            size = min(write_sizes[turn % len(write_sizes)], len(data) - at)
            buffer[:size] = data[at : at + size]
            md5s.write(memoryview(buffer)[:size])
            buffer[:size] = bytes(size)
            at, turn = at + size, turn + 1
        assert sink.getvalue() == data
        assert md5s.md5s() == [_md5(piece) for piece in _pieces(data, part_size)]
    finally:
        md5s.close()


def test_an_exact_multiple_of_the_part_size_has_no_empty_last_part() -> None:
    data = os.urandom(3 * 1024)
    md5s = PartMd5s(cast(BinaryIO, io.BytesIO()), 1024)
    md5s.write(data)
    assert md5s.md5s() == [_md5(piece) for piece in _pieces(data, 1024)]
    assert len(md5s.md5s()) == 3


def test_a_single_upload_is_one_piece_of_the_whole_size() -> None:
    assert SingleUpload(url="u").piece_size(12345) == 12345
    assert MultipartUpload(part_size=5000, part_urls=("u1", "u2", "u3")).piece_size(12345) == 5000


def test_a_part_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        PartMd5s(cast(BinaryIO, io.BytesIO()), 0)
