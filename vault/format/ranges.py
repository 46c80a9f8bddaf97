"""Range reads (docs/FORMAT.md, "Range reads"): decrypt only the chunks a byte range touches.

The ciphertext is fetched through `read_at(offset, size)`, which returns up to `size` bytes
at `offset` (fewer only at the end of the blob), so a caller can serve it with HTTP Range
requests against a presigned URL. One call fetches the header, then one call per run of
whole chunks of up to FETCH_SIZE bytes (at least one chunk), so memory stays bounded whatever
the range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from vault.format.attributes import RecordAttributes
from vault.format.errors import FormatError, IntegrityError
from vault.format.header import MAX_HEADER_SIZE, Header, parse_header, verify_header
from vault.format.keys import payload_keys
from vault.format.metadata import TAG_SIZE
from vault.format.payload import ChunkCipher, chunk_count, chunk_plaintext_size

ReadAt = Callable[[int, int], bytes]

# Whole chunks are fetched up to this many bytes per read_at call, so a long range costs few
# round trips while memory stays bounded.
FETCH_SIZE = 4 << 20


def _check_range(header: Header, start: int, length: int) -> None:
    size = header.metadata.size
    if start < 0 or length < 1 or start + length > size:
        raise FormatError(
            f"range of {length} bytes at {start} is not inside the record's {size} bytes"
        )


def _chunk_offset(header: Header, index: int) -> int:
    return header.size + index * (header.chunk_size + TAG_SIZE)


def ciphertext_range_for(header: Header, start: int, length: int) -> tuple[int, int]:
    """Half-open ciphertext range [begin, end) holding plaintext bytes [start, start+length).

    Fetching exactly these bytes (e.g. as HTTP `Range: bytes=begin-(end-1)`) is enough for
    `decrypt_range` given the header.
    """
    _check_range(header, start, length)
    first = start // header.chunk_size
    last = (start + length - 1) // header.chunk_size
    last_size = chunk_plaintext_size(last, size=header.metadata.size, chunk_size=header.chunk_size)
    end = _chunk_offset(header, last) + last_size + TAG_SIZE
    return _chunk_offset(header, first), end


def open_header_at(*, record_key: bytes, attributes: RecordAttributes, read_at: ReadAt) -> Header:
    """Fetch and verify the header with one read of at most MAX_HEADER_SIZE bytes."""
    prefix = read_at(0, MAX_HEADER_SIZE)
    cursor = 0

    def read(n: int) -> bytes:
        nonlocal cursor
        data = prefix[cursor : cursor + n]
        cursor += len(data)
        return data

    return verify_header(parse_header(read), record_key=record_key, attributes=attributes)


def decrypt_range(
    *,
    record_key: bytes,
    attributes: RecordAttributes,
    read_at: ReadAt,
    start: int,
    length: int,
    dst: BinaryIO,
    header: Header | None = None,
) -> None:
    """Write plaintext bytes [start, start+length) to `dst`, each chunk once authenticated.

    Pass the `header` from `open_header` or `open_header_at` when it is already verified, so
    that `read_at` is only asked for the payload bytes `ciphertext_range_for` names;
    otherwise the header is fetched and verified first.
    """
    if header is None:
        header = open_header_at(record_key=record_key, attributes=attributes, read_at=read_at)
    elif header.attributes != attributes:
        raise IntegrityError() from ValueError("the header belongs to other attributes")
    _check_range(header, start, length)
    size, chunk_size = header.metadata.size, header.chunk_size
    cipher = ChunkCipher(
        payload_keys(record_key=record_key, salt=header.salt, attributes=attributes)
    )
    count = chunk_count(size, chunk_size)
    plain = memoryview(bytearray(chunk_size))
    end = start + length
    first, last = start // chunk_size, (end - 1) // chunk_size
    per_fetch = max(1, FETCH_SIZE // (chunk_size + TAG_SIZE))
    for batch in range(first, last + 1, per_fetch):
        batch_last = min(batch + per_fetch, last + 1) - 1
        batch_end = _chunk_offset(header, batch_last) + TAG_SIZE
        batch_end += chunk_plaintext_size(batch_last, size=size, chunk_size=chunk_size)
        fetched = memoryview(
            read_at(_chunk_offset(header, batch), batch_end - _chunk_offset(header, batch))
        )
        at = 0
        for index in range(batch, batch_last + 1):
            want = chunk_plaintext_size(index, size=size, chunk_size=chunk_size)
            sealed = fetched[at : at + want + TAG_SIZE]
            at += want + TAG_SIZE
            if len(sealed) != want + TAG_SIZE:
                raise IntegrityError() from ValueError(f"payload is truncated in chunk {index}")
            out = plain[:want]
            cipher.open_into(index, last=index == count - 1, ciphertext=sealed, out=out)
            chunk_start = index * chunk_size
            dst.write(out[max(start - chunk_start, 0) : min(end - chunk_start, want)])
