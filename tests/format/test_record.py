"""Round trips, range reads, sealed metadata and argument checks of vault.format."""

from __future__ import annotations

import io
import tracemalloc

import blake3
import pytest

import vault.format as fmt
from tests.format.blobs import encrypted_blob
from vault.format import (
    Category,
    CiphertextDigest,
    FormatError,
    IntegrityError,
    Metadata,
    RecordAttributes,
    UnsupportedVersionError,
    ranges,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
ATTRS = RecordAttributes(
    record_id=b"\x11" * 16, version=3, child_ids=(b"\x22" * 16, b"\x21" * 16), category="medical"
)
CHUNK = 4096


def _read_range(
    read_at: fmt.ReadAt,
    start: int,
    length: int,
    *,
    header: fmt.Header | None = None,
    attributes: RecordAttributes = ATTRS,
    dst: io.BytesIO | None = None,
) -> bytes:
    """Plaintext bytes [start, start+length) by ``fmt.decrypt_range`` under ``KEY``; into
    ``dst`` if given, for a test that looks at what was written before a failure."""
    out = io.BytesIO() if dst is None else dst
    fmt.decrypt_range(
        record_key=KEY,
        attributes=attributes,
        read_at=read_at,
        start=start,
        length=length,
        dst=out,
        header=header,
    )
    return out.getvalue()


def _plaintext(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def _encrypt(data: bytes, chunk_size: int = CHUNK, name: str = "letter.pdf") -> bytes:
    return encrypted_blob(
        data,
        record_key=KEY,
        attributes=ATTRS,
        chunk_size=chunk_size,
        file_name=name,
        content_type="application/pdf",
    )


def _decrypt(blob: bytes, key: bytes = KEY, attrs: RecordAttributes = ATTRS) -> bytes:
    out = io.BytesIO()
    fmt.decrypt(record_key=key, attributes=attrs, src=io.BytesIO(blob), dst=out)
    return out.getvalue()


def test_public_surface_is_exactly_all() -> None:
    exported = {name for name in dir(fmt) if not name.startswith("_")}
    modules = {
        "attributes",
        "digest",
        "errors",
        "header",
        "keys",
        "metadata",
        "payload",
        "ranges",
        "record",
    }
    assert exported - modules == set(fmt.__all__)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17])
def test_round_trip_and_reported_size_and_digest(size: int) -> None:
    data = _plaintext(size)
    out = io.BytesIO()
    meta = Metadata(file_name="a.txt", content_type="text/plain", size=size)
    result = fmt.encrypt(
        record_key=KEY,
        attributes=ATTRS,
        metadata=meta,
        src=io.BytesIO(data),
        dst=out,
        chunk_size=CHUNK,
    )
    blob = out.getvalue()
    assert result.ciphertext_size == len(blob)
    assert result.digest == CiphertextDigest("blake3", blake3.blake3(blob).digest())
    assert fmt.ciphertext_size(meta, child_count=2, chunk_size=CHUNK) == len(blob)
    back = io.BytesIO()
    assert fmt.decrypt(record_key=KEY, attributes=ATTRS, src=io.BytesIO(blob), dst=back) == meta
    assert back.getvalue() == data


def test_encrypt_without_digest_gives_a_decryptable_blob_of_the_announced_size() -> None:
    data = _plaintext(3 * CHUNK + 5)
    out = io.BytesIO()
    meta = Metadata(file_name="", content_type="application/octet-stream", size=len(data))
    size = fmt.encrypt_without_digest(
        record_key=KEY,
        attributes=ATTRS,
        metadata=meta,
        src=io.BytesIO(data),
        dst=out,
        chunk_size=CHUNK,
    )
    assert size == len(out.getvalue())
    assert _decrypt(out.getvalue()) == data


def test_two_encryptions_of_the_same_plaintext_differ() -> None:
    data = _plaintext(100)
    assert _encrypt(data) != _encrypt(data)


def test_default_chunk_size_is_256_kib() -> None:
    blob = _encrypt(_plaintext(10), chunk_size=fmt.DEFAULT_CHUNK_SIZE)
    header = fmt.open_header(record_key=KEY, attributes=ATTRS, src=blob)
    assert header.chunk_size == 1 << 18


def test_open_header_leaves_the_stream_at_the_payload() -> None:
    data = _plaintext(10)
    blob = _encrypt(data)
    src = io.BytesIO(blob)
    header = fmt.open_header(record_key=KEY, attributes=ATTRS, src=src)
    assert src.tell() == header.size
    assert len(blob) - header.size == 10 + 16
    assert header.metadata.file_name == "letter.pdf"


@pytest.mark.parametrize("chunks", [1, 2, 7])
def test_every_range_decrypts_to_the_same_bytes(chunks: int) -> None:
    data = _plaintext(chunks * CHUNK - 3)
    blob = _encrypt(data)
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, size: int) -> bytes:
        reads.append((offset, size))
        return blob[offset : offset + size]

    cases = [(0, len(data)), (0, 1), (len(data) - 1, 1), (CHUNK - 1, 2), (CHUNK, CHUNK)]
    for start, length in cases:
        if start + length > len(data):
            continue
        assert _read_range(read_at, start, length) == data[start : start + length]


def test_range_read_with_a_header_touches_only_the_named_ciphertext() -> None:
    data = _plaintext(6 * CHUNK)
    blob = _encrypt(data)
    header = fmt.open_header(record_key=KEY, attributes=ATTRS, src=blob[: fmt.MAX_HEADER_SIZE])
    start, length = 2 * CHUNK + 10, CHUNK
    begin, end = fmt.ciphertext_range_for(header, start, length)
    assert (begin, end) == (header.size + 2 * (CHUNK + 16), header.size + 4 * (CHUNK + 16))

    def read_at(offset: int, size: int) -> bytes:
        assert begin <= offset and offset + size <= end
        return blob[offset : offset + size]

    assert _read_range(read_at, start, length, header=header) == data[start : start + length]


def test_range_of_a_forged_chunk_fails_and_writes_nothing() -> None:
    data = _plaintext(3 * CHUNK)
    blob = bytearray(_encrypt(data))
    header = fmt.open_header(record_key=KEY, attributes=ATTRS, src=bytes(blob))
    blob[header.size + CHUNK + 16 + 5] ^= 1
    out = io.BytesIO()
    with pytest.raises(IntegrityError):
        _read_range(lambda o, n: bytes(blob[o : o + n]), CHUNK + 1, 10, dst=out)
    assert out.getvalue() == b""


def test_range_outside_the_plaintext_is_refused() -> None:
    blob = _encrypt(_plaintext(100))
    header = fmt.open_header(record_key=KEY, attributes=ATTRS, src=blob)
    for start, length in [(0, 0), (99, 2), (-1, 1), (100, 1)]:
        with pytest.raises(FormatError):
            fmt.ciphertext_range_for(header, start, length)


def test_range_with_a_header_of_other_attributes_is_refused() -> None:
    blob = _encrypt(_plaintext(100))
    header = fmt.open_header(record_key=KEY, attributes=ATTRS, src=blob)
    other = RecordAttributes(
        record_id=b"\x12" * 16, version=3, child_ids=ATTRS.child_ids, category="medical"
    )
    with pytest.raises(IntegrityError):
        _read_range(lambda o, n: blob[o : o + n], 0, 1, header=header, attributes=other)


def test_sealed_metadata_round_trip_and_failures() -> None:
    meta = Metadata(file_name="Ünïcødé report.docx", content_type="application/msword", size=9)
    sealed = fmt.seal_metadata(record_key=KEY, attributes=ATTRS, metadata=meta)
    assert fmt.open_metadata(record_key=KEY, attributes=ATTRS, sealed=sealed) == meta
    assert b"report" not in sealed
    with pytest.raises(IntegrityError):
        fmt.open_metadata(record_key=OTHER_KEY, attributes=ATTRS, sealed=sealed)
    other = RecordAttributes(
        record_id=ATTRS.record_id, version=4, child_ids=ATTRS.child_ids, category="medical"
    )
    with pytest.raises(IntegrityError):
        fmt.open_metadata(record_key=KEY, attributes=other, sealed=sealed)
    for i in range(len(sealed)):
        forged = bytearray(sealed)
        forged[i] ^= 0x40
        with pytest.raises((IntegrityError, UnsupportedVersionError)):
            fmt.open_metadata(record_key=KEY, attributes=ATTRS, sealed=bytes(forged))
    with pytest.raises(FormatError):
        fmt.open_metadata(record_key=KEY, attributes=ATTRS, sealed=sealed[:-1][:90])
    with pytest.raises(UnsupportedVersionError):
        fmt.open_metadata(record_key=KEY, attributes=ATTRS, sealed=b"\x02" + sealed[1:])


@pytest.mark.parametrize(
    ("name", "ctype", "size"),
    [
        ("a/b", "text/plain", 1),
        ("a\\b", "text/plain", 1),
        ("..", "text/plain", 1),
        (".", "text/plain", 1),
        ("tab\there", "text/plain", 1),
        ("x" * 256, "text/plain", 1),
        ("\udcff", "text/plain", 1),
        ("ok", "", 1),
        ("ok", "t" * 128, 1),
        ("ok", "tëxt/plain", 1),
        ("ok", "text/plain", -1),
        ("ok", "text/plain", 2**40 + 1),
    ],
)
def test_metadata_outside_the_limits_is_refused(name: str, ctype: str, size: int) -> None:
    with pytest.raises(FormatError):
        Metadata(file_name=name, content_type=ctype, size=size)


def _assert_encrypt_refuses(
    *,
    record_key: bytes = KEY,
    chunk_size: int = fmt.DEFAULT_CHUNK_SIZE,
    declared: int = 1,
    source: bytes = b"x",
) -> None:
    """``fmt.encrypt`` refuses these arguments (a source of ``declared`` bytes) as malformed."""
    meta = Metadata(file_name="a", content_type="text/plain", size=declared)
    with pytest.raises(FormatError):
        fmt.encrypt(
            record_key=record_key,
            attributes=ATTRS,
            metadata=meta,
            src=io.BytesIO(source),
            dst=io.BytesIO(),
            chunk_size=chunk_size,
        )


@pytest.mark.parametrize("chunk_size", [0, 2048, 4095, 4097, 3 << 20, 1 << 25])
def test_chunk_sizes_outside_the_spec_are_refused(chunk_size: int) -> None:
    _assert_encrypt_refuses(chunk_size=chunk_size)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33)])
def test_record_keys_of_the_wrong_size_are_refused(key: bytes) -> None:
    _assert_encrypt_refuses(record_key=key)
    with pytest.raises(FormatError):
        fmt.decrypt(
            record_key=key, attributes=ATTRS, src=io.BytesIO(_encrypt(b"x")), dst=io.BytesIO()
        )


@pytest.mark.parametrize(("declared", "actual"), [(10, 9), (10, 11), (CHUNK, CHUNK + 1), (0, 1)])
def test_a_source_of_another_size_than_declared_is_refused(declared: int, actual: int) -> None:
    _assert_encrypt_refuses(chunk_size=CHUNK, declared=declared, source=bytes(actual))


def test_failures_chain_their_cause_but_say_nothing_in_the_message() -> None:
    blob = _encrypt(_plaintext(10))
    with pytest.raises(IntegrityError) as info:
        _decrypt(blob, key=OTHER_KEY)
    assert str(info.value) == "record failed integrity check"
    assert info.value.__cause__ is not None


def test_a_bad_later_chunk_leaves_only_authenticated_chunks_in_the_output() -> None:
    data = _plaintext(3 * CHUNK)
    blob = bytearray(_encrypt(data))
    blob[-5] ^= 1
    out = io.BytesIO()
    with pytest.raises(IntegrityError):
        fmt.decrypt(record_key=KEY, attributes=ATTRS, src=io.BytesIO(bytes(blob)), dst=out)
    assert out.getvalue() == data[: 2 * CHUNK]


def test_a_stream_that_returns_short_reads_still_round_trips() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            chunk = self._src.read(min(len(buf), 1000))
            buf[: len(chunk)] = chunk
            return len(chunk)

    data = _plaintext(3 * CHUNK + 1)
    blob = _encrypt(data)
    out = io.BytesIO()
    fmt.decrypt(record_key=KEY, attributes=ATTRS, src=Trickle(blob), dst=out)  # type: ignore[arg-type]
    assert out.getvalue() == data


def test_every_category_round_trips() -> None:
    for category in Category:
        attrs = RecordAttributes(
            record_id=b"\x01" * 16, version=1, child_ids=(b"\x02" * 16,), category=category
        )
        out = io.BytesIO()
        meta = Metadata(file_name="n", content_type="text/plain", size=3)
        fmt.encrypt(
            record_key=KEY, attributes=attrs, metadata=meta, src=io.BytesIO(b"abc"), dst=out
        )
        back = io.BytesIO()
        fmt.decrypt(record_key=KEY, attributes=attrs, src=io.BytesIO(out.getvalue()), dst=back)
        assert back.getvalue() == b"abc"


def _recording_reader(blob: bytes, sizes: list[int]) -> fmt.ReadAt:
    def read_at(offset: int, size: int) -> bytes:
        sizes.append(size)
        return blob[offset : offset + size]

    return read_at


def test_a_long_range_is_fetched_in_few_bounded_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _plaintext(9 * CHUNK + 100)
    blob = _encrypt(data)
    header = fmt.open_header(record_key=KEY, attributes=ATTRS, src=blob)
    for fetch_chunks, expected_calls in [(1000, 1), (2, 5), (1, 10)]:
        monkeypatch.setattr(ranges, "FETCH_SIZE", fetch_chunks * (CHUNK + 16))
        sizes: list[int] = []
        read_at = _recording_reader(blob, sizes)
        assert _read_range(read_at, 5, len(data) - 5, header=header) == data[5:]
        assert len(sizes) == expected_calls
        assert max(sizes) <= fetch_chunks * (CHUNK + 16)


class _Sink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        return len(data)


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_memory_stays_bounded_whatever_the_size() -> None:
    size = 48 << 20
    meta = Metadata(file_name="big", content_type="application/octet-stream", size=size)
    blob = io.BytesIO()
    fmt.encrypt(record_key=KEY, attributes=ATTRS, metadata=meta, src=_Zeros(size), dst=blob)
    tracemalloc.start()
    try:
        fmt.encrypt(record_key=KEY, attributes=ATTRS, metadata=meta, src=_Zeros(size), dst=_Sink())
        _, encrypt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        blob.seek(0)
        fmt.decrypt(record_key=KEY, attributes=ATTRS, src=blob, dst=_Sink())
        _, decrypt_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Two chunk buffers of the default 256 KiB, plus a chunk-sized read in the source.
    assert encrypt_peak < 4 * fmt.DEFAULT_CHUNK_SIZE
    assert decrypt_peak < 4 * fmt.DEFAULT_CHUNK_SIZE


def test_header_sizes_match_the_spec() -> None:
    assert fmt.MAX_HEADER_SIZE == 1563
    one_child = RecordAttributes(
        record_id=b"\x01" * 16, version=1, child_ids=(b"\x02" * 16,), category="photo"
    )
    out = io.BytesIO()
    meta = Metadata(file_name="", content_type="x", size=0)
    fmt.encrypt(record_key=KEY, attributes=one_child, metadata=meta, src=io.BytesIO(), dst=out)
    header = fmt.open_header(record_key=KEY, attributes=one_child, src=out.getvalue())
    assert header.size == 174
    assert len(out.getvalue()) == 174 + 16
