"""Writes the record-format test vectors: `python -m tests.format.generate_vectors`.

Every vector is one scenario of docs/FORMAT.md, built with fixed keys and salts through the
format's private seams (`_encrypt` and the header and payload builders), so the files are
reproducible byte for byte; tests/format/test_vectors.py checks both that each vector holds
and that this generator still produces the committed files.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vault.format import Category, Metadata, RecordAttributes
from vault.format.header import RawHeader, build_header, parse_header
from vault.format.keys import header_keys, payload_keys
from vault.format.metadata import encrypt_metadata
from vault.format.payload import ChunkCipher
from vault.format.record import _encrypt

VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors" / "format"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
SALT = bytes([0xA5]) * 32
OTHER_SALT = bytes([0x5A]) * 32
CHUNK = 4096
CHUNK_LOG2 = 12
RECORD_ID = bytes.fromhex("0123456789abcdef0123456789abcdef")
CHILD_A = bytes.fromhex("10000000000000000000000000000001")
CHILD_B = bytes.fromhex("20000000000000000000000000000002")
CHILD_C = bytes.fromhex("30000000000000000000000000000003")


def attributes(
    *,
    children: tuple[bytes, ...] = (CHILD_A,),
    category: Category = Category.OBSERVATION,
    record_id: bytes = RECORD_ID,
    version: int = 1,
) -> RecordAttributes:
    return RecordAttributes(
        record_id=record_id, version=version, child_ids=children, category=category
    )


ATTRS = attributes()
ATTRS_BYTES_LEN = len(ATTRS.canonical())


def plaintext(size: int) -> bytes:
    """Deterministic, non-repeating-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def seal(
    data: bytes,
    *,
    attrs: RecordAttributes = ATTRS,
    chunk_size: int = CHUNK,
    salt: bytes = SALT,
    key: bytes = KEY,
    file_name: str = "observation.txt",
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    out = io.BytesIO()
    meta = Metadata(file_name=file_name, content_type=content_type, size=len(data))
    _encrypt(
        record_key=key,
        attributes=attrs,
        metadata=meta,
        src=io.BytesIO(data),
        dst=out,
        chunk_size=chunk_size,
        salt=salt,
    )
    return out.getvalue()


def header_size(blob: bytes) -> int:
    src = io.BytesIO(blob)
    raw = parse_header(src.read)
    return len(raw.encode())


def header_of(
    size: int, *, attrs: RecordAttributes = ATTRS, salt: bytes = SALT, metadata_bytes: bytes = b""
) -> bytes:
    encoded = (
        metadata_bytes or Metadata(file_name="f", content_type="text/plain", size=size).encode()
    )
    return build_header(
        record_key=KEY,
        attributes=attrs,
        chunk_size_log2=CHUNK_LOG2,
        salt=salt,
        metadata_bytes=encoded,
    )


def chunks(pieces: list[tuple[int, bool, bytes]], *, salt: bytes = SALT) -> bytes:
    """Seal chunks with chosen indices and flags, to forge payloads the encoder never makes."""
    cipher = ChunkCipher(payload_keys(record_key=KEY, salt=salt, attributes=ATTRS))
    out = b""
    for index, last, data in pieces:
        sealed = bytearray(len(data) + 16)
        cipher.seal_into(index, last=last, plaintext=memoryview(data), out=memoryview(sealed))
        out += bytes(sealed)
    return out


def flip(blob: bytes, offset: int, mask: int = 0x01) -> bytes:
    changed = bytearray(blob)
    changed[offset] ^= mask
    return bytes(changed)


def put(blob: bytes, offset: int, value: bytes) -> bytes:
    return blob[:offset] + value + blob[offset + len(value) :]


@dataclass(frozen=True)
class Vector:
    name: str
    description: str
    expect: str
    blob: bytes
    record_key: bytes = KEY
    attrs: RecordAttributes = ATTRS
    plaintext: bytes | None = None
    metadata: Metadata | None = None
    error_contains: str | None = None

    def to_json(self) -> str:
        doc: dict[str, object] = {
            "name": self.name,
            "description": self.description,
            "expect": self.expect,
            "record_key": self.record_key.hex(),
            "attributes": self.attrs.canonical().hex(),
            "blob": self.blob.hex(),
        }
        if self.plaintext is not None and self.metadata is not None:
            doc["plaintext_size"] = len(self.plaintext)
            doc["plaintext_sha256"] = hashlib.sha256(self.plaintext).hexdigest()
            doc["metadata"] = {
                "file_name": self.metadata.file_name,
                "content_type": self.metadata.content_type,
                "size": self.metadata.size,
            }
        if self.error_contains is not None:
            doc["error_contains"] = self.error_contains
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def success(
    name: str,
    description: str,
    data: bytes,
    *,
    attrs: RecordAttributes = ATTRS,
    chunk_size: int = CHUNK,
    file_name: str = "observation.txt",
    content_type: str = "text/plain; charset=utf-8",
) -> Vector:
    blob = seal(
        data, attrs=attrs, chunk_size=chunk_size, file_name=file_name, content_type=content_type
    )
    meta = Metadata(file_name=file_name, content_type=content_type, size=len(data))
    return Vector(
        name=name,
        description=description,
        expect="success",
        blob=blob,
        attrs=attrs,
        plaintext=data,
        metadata=meta,
    )


def _successes() -> Iterator[Vector]:
    yield success("success_empty", "an empty payload is one empty final chunk", b"")
    yield success("success_one_byte", "one byte in one final chunk", plaintext(1))
    yield success("success_one_chunk_exact", "exactly one full chunk", plaintext(CHUNK))
    yield success("success_chunk_minus_one", "one byte short of a chunk", plaintext(CHUNK - 1))
    yield success(
        "success_chunk_plus_one", "a full chunk and a final one-byte chunk", plaintext(CHUNK + 1)
    )
    yield success(
        "success_many_chunks", "ten full chunks and a short final one", plaintext(10 * CHUNK + 123)
    )
    yield success(
        "success_exact_multiple", "three full chunks, the last one final", plaintext(3 * CHUNK)
    )
    yield success(
        "success_several_children",
        "a record of three children, given out of order and stored sorted",
        plaintext(100),
        attrs=attributes(children=(CHILD_C, CHILD_A, CHILD_B)),
    )
    yield success(
        "success_max_children",
        "a record of 64 children, the most allowed",
        plaintext(100),
        attrs=attributes(children=tuple(bytes([i]) * 16 for i in range(1, 65))),
    )
    for category in Category:
        yield success(
            f"success_category_{category.value.replace('-', '_')}",
            f"a {category.value} record",
            plaintext(50),
            attrs=attributes(category=category),
        )
    yield success(
        "success_largest_version",
        "version 2^32-1",
        plaintext(10),
        attrs=attributes(version=2**32 - 1),
    )
    yield success(
        "success_default_chunk_size",
        "the default 256 KiB chunk size",
        plaintext(300),
        chunk_size=1 << 18,
    )
    yield success(
        "success_largest_chunk_size",
        "the largest chunk size, 16 MiB",
        plaintext(300),
        chunk_size=1 << 24,
    )
    yield success(
        "success_metadata_at_limits",
        "a 255-byte UTF-8 file name and a 127-byte content type",
        plaintext(5),
        file_name="é" * 127 + "x",
        content_type="a" * 127,
    )
    yield success(
        "success_empty_file_name", "a record with no file name", plaintext(5), file_name=""
    )


def _field_offsets() -> dict[str, int]:
    a = ATTRS_BYTES_LEN
    return {
        "format_version": 8,
        "category": 9,
        "record_id": 10,
        "version": 26,
        "child_count": 30,
        "child_ids": 31,
        "suite": 8 + a,
        "chunk_size_log2": 9 + a,
        "salt": 10 + a,
        "commitment": 42 + a,
        "metadata_length": 74 + a,
        "encrypted_metadata": 76 + a,
    }


def _header_failures() -> Iterator[Vector]:
    blob = seal(plaintext(60))
    at = _field_offsets()
    size = header_size(blob)

    def fail(name: str, description: str, expect: str, forged: bytes, contains: str = "") -> Vector:
        return Vector(
            name=name,
            description=description,
            expect=expect,
            blob=forged,
            error_contains=contains or None,
        )

    yield fail("header_bad_magic", "first magic byte changed", "format", flip(blob, 0), "magic")
    yield fail(
        "header_text_mode_magic",
        "CR LF in the magic turned into LF",
        "format",
        blob[:4] + b"\n" + blob[6:],
        "magic",
    )
    yield fail(
        "header_format_version_2",
        "format version 2",
        "unsupported",
        put(blob, at["format_version"], b"\x02"),
        "format version 2",
    )
    yield fail(
        "header_format_version_0",
        "format version 0",
        "unsupported",
        put(blob, at["format_version"], b"\x00"),
        "format version 0",
    )
    yield fail(
        "header_suite_unknown", "suite 2", "unsupported", put(blob, at["suite"], b"\x02"), "suite 2"
    )
    yield fail(
        "header_category_altered",
        "category observation changed to medical",
        "integrity",
        put(blob, at["category"], b"\x03"),
    )
    yield fail(
        "header_category_unknown",
        "category code 9",
        "format",
        put(blob, at["category"], b"\x09"),
        "category",
    )
    yield fail(
        "header_record_id_altered",
        "one bit of the record id",
        "integrity",
        flip(blob, at["record_id"] + 15),
    )
    yield fail(
        "header_version_altered",
        "version 1 changed to 2",
        "integrity",
        put(blob, at["version"], struct.pack(">I", 2)),
    )
    yield fail(
        "header_version_zero",
        "version 0 is not a version",
        "format",
        put(blob, at["version"], bytes(4)),
        "version",
    )
    yield fail(
        "header_child_id_altered",
        "last byte of the child id",
        "integrity",
        flip(blob, at["child_ids"] + 15),
    )
    yield fail(
        "header_child_count_zero",
        "a record of no children",
        "format",
        put(blob, at["child_count"], b"\x00"),
        "child count 0",
    )
    yield fail(
        "header_child_count_over_limit",
        "65 children claimed",
        "format",
        put(blob, at["child_count"], bytes([65])),
        "child count 65",
    )
    yield fail(
        "header_child_count_altered",
        "2 children claimed, one present: suite, chunk size and salt read as a smaller child id",
        "format",
        put(blob, at["child_count"], b"\x02"),
        "ascending",
    )
    yield fail(
        "header_chunk_size_altered",
        "chunk size exponent 12 changed to 13",
        "integrity",
        put(blob, at["chunk_size_log2"], bytes([13])),
    )
    yield fail(
        "header_chunk_size_below_limit",
        "chunk size exponent 11",
        "format",
        put(blob, at["chunk_size_log2"], bytes([11])),
        "chunk size exponent 11",
    )
    yield fail(
        "header_chunk_size_over_limit",
        "chunk size exponent 25",
        "format",
        put(blob, at["chunk_size_log2"], bytes([25])),
        "chunk size exponent 25",
    )
    yield fail("header_salt_altered", "one bit of the salt", "integrity", flip(blob, at["salt"]))
    yield fail(
        "header_commitment_altered",
        "one bit of the key commitment",
        "integrity",
        flip(blob, at["commitment"] + 31),
    )
    (meta_len,) = struct.unpack_from(">H", blob, at["metadata_length"])
    yield fail(
        "header_metadata_length_altered",
        "metadata length one more",
        "integrity",
        put(blob, at["metadata_length"], struct.pack(">H", meta_len + 1)),
    )
    yield fail(
        "header_metadata_length_below_limit",
        "metadata length 26",
        "format",
        put(blob, at["metadata_length"], struct.pack(">H", 26)),
        "metadata length 26",
    )
    yield fail(
        "header_metadata_length_over_limit",
        "metadata length 409",
        "format",
        put(blob, at["metadata_length"], struct.pack(">H", 409)),
        "metadata length 409",
    )
    yield fail(
        "header_encrypted_metadata_altered",
        "one bit of the encrypted metadata",
        "integrity",
        flip(blob, at["encrypted_metadata"] + 3),
    )
    yield fail("header_mac_altered", "one bit of the header MAC", "integrity", flip(blob, size - 1))
    yield fail(
        "header_truncated",
        "the blob ends inside the salt",
        "format",
        blob[: at["salt"] + 5],
        "truncated",
    )
    yield fail(
        "header_truncated_before_mac",
        "the blob ends before the MAC",
        "format",
        blob[: size - 32],
        "truncated",
    )
    yield fail("header_empty_blob", "zero bytes", "format", b"", "truncated")
    yield Vector(
        name="wrong_record_key",
        description="another record key",
        expect="integrity",
        blob=blob,
        record_key=OTHER_KEY,
    )
    for field, other in [
        ("record_id", attributes(record_id=bytes(16))),
        ("version", attributes(version=2)),
        ("category", attributes(category=Category.SAFEGUARDING)),
        ("children", attributes(children=(CHILD_A, CHILD_B))),
    ]:
        yield Vector(
            name=f"attributes_differ_{field}",
            description=f"the reader expects another {field} than the blob is bound to",
            expect="integrity",
            blob=blob,
            attrs=other,
        )


def _children_blob(stored: bytes) -> bytes:
    """A two-child record whose header stores ``stored`` as its child ids."""
    attrs = attributes(children=(CHILD_A, CHILD_B))
    blob = seal(b"abc", attrs=attrs)
    return put(blob, 31, stored)


def _forged_metadata_blob(metadata_bytes: bytes) -> bytes:
    """A header the key holder authenticated around metadata the encoder would refuse."""
    return header_of(0, metadata_bytes=metadata_bytes) + chunks([(0, True, b"")])


def _header_with_unauthentic_metadata() -> bytes:
    keys = header_keys(record_key=KEY, salt=SALT, attributes=ATTRS)
    good = encrypt_metadata(keys.metadata_key, Metadata("f", "text/plain", 0).encode())
    raw = RawHeader(
        attributes_bytes=ATTRS.canonical(),
        suite=1,
        chunk_size_log2=CHUNK_LOG2,
        salt=SALT,
        commitment=keys.commitment,
        encrypted_metadata=flip(good, 0),
        mac=b"",
    )
    mac = hmac.new(keys.mac_key, raw.signed_bytes(), hashlib.sha256).digest()
    return raw.signed_bytes() + mac + chunks([(0, True, b"")])


def _non_canonical() -> Iterator[Vector]:
    def meta(size: int, name: bytes, ctype: bytes) -> bytes:
        return struct.pack(">QB", size, len(name)) + name + struct.pack(">B", len(ctype)) + ctype

    yield Vector(
        name="noncanonical_child_ids_unsorted",
        description="two child ids stored in descending order",
        expect="format",
        blob=_children_blob(CHILD_B + CHILD_A),
        attrs=attributes(children=(CHILD_A, CHILD_B)),
        error_contains="ascending",
    )
    yield Vector(
        name="noncanonical_child_ids_repeated",
        description="the same child id stored twice (child count 2)",
        expect="format",
        blob=_children_blob(CHILD_A + CHILD_A),
        attrs=attributes(children=(CHILD_A, CHILD_B)),
        error_contains="ascending",
    )
    forged: list[tuple[str, str, bytes, str]] = [
        (
            "noncanonical_metadata_trailing_byte",
            "authentic metadata with a byte left over",
            meta(0, b"f", b"text/plain") + b"\x00",
            "length",
        ),
        (
            "noncanonical_metadata_invalid_utf8",
            "file name bytes that are not UTF-8",
            meta(0, b"\xc0\xaf", b"text/plain"),
            "UTF-8",
        ),
        (
            "noncanonical_metadata_name_with_slash",
            "file name with a path separator",
            meta(0, b"../etc", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_with_backslash",
            "file name with a Windows path separator",
            meta(0, b"..\\evil.exe", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_dot",
            "file name '.'",
            meta(0, b".", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_dot_dot",
            "file name '..'",
            meta(0, b"..", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_control_nul",
            "file name with a NUL byte (C0 control)",
            meta(0, b"a\x00b", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_control_newline",
            "file name with a line feed (C0 control)",
            meta(0, b"a\nb.txt", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_control_unit_separator",
            "file name with 0x1F, the last C0 control",
            meta(0, b"a\x1fb", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_del",
            "file name with DEL (0x7F)",
            meta(0, b"a\x7fb", b"text/plain"),
            "file name",
        ),
        (
            "noncanonical_metadata_name_overlong_utf8",
            "file name with 'a' in an overlong two-byte form (C1 A1)",
            meta(0, b"\xc1\xa1.txt", b"text/plain"),
            "UTF-8",
        ),
        (
            "noncanonical_metadata_name_overlong_utf8_three_bytes",
            "file name with '.' in an overlong three-byte form (E0 80 AE)",
            meta(0, b"\xe0\x80\xae", b"text/plain"),
            "UTF-8",
        ),
        (
            "noncanonical_metadata_name_encoded_surrogate",
            "file name with the surrogate U+D800 encoded as UTF-8 (ED A0 80)",
            meta(0, b"a\xed\xa0\x80b", b"text/plain"),
            "UTF-8",
        ),
        (
            "noncanonical_metadata_empty_content_type",
            "content type of zero bytes",
            meta(0, b"f", b""),
            "content type",
        ),
        (
            "noncanonical_metadata_content_type_non_ascii",
            "content type with UTF-8 'ä' (C3 A4)",
            meta(0, b"f", b"text/pl\xc3\xa4in"),
            "ASCII",
        ),
        (
            "noncanonical_metadata_content_type_control",
            "content type with a tab, outside 0x20..0x7E",
            meta(0, b"f", b"text/plain;\tcharset=utf-8"),
            "content type",
        ),
        (
            "noncanonical_metadata_content_type_del",
            "content type with DEL (0x7F)",
            meta(0, b"f", b"text/plain\x7f"),
            "content type",
        ),
        (
            "limit_metadata_content_type_128_bytes",
            "content type of 128 bytes, one over the limit",
            meta(0, b"f", b"a" * 128),
            "content type",
        ),
        (
            "limit_metadata_size_over_2_40",
            "plaintext size 2^40 + 1 declared",
            meta(2**40 + 1, b"f", b"text/plain"),
            "plaintext size",
        ),
    ]
    for name, description, encoded, contains in forged:
        yield Vector(
            name=name,
            description=description,
            expect="format",
            blob=_forged_metadata_blob(encoded),
            error_contains=contains,
        )
    yield Vector(
        name="header_metadata_not_authentic",
        description="header MAC and commitment valid, metadata ciphertext forged",
        expect="integrity",
        blob=_header_with_unauthentic_metadata(),
    )


def _payload_failures() -> Iterator[Vector]:
    data = plaintext(3 * CHUNK)
    parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    blob = seal(data)
    head = blob[: header_size(blob)]
    step = CHUNK + 16
    body = blob[len(head) :]
    c0, c1, c2 = body[:step], body[step : 2 * step], body[2 * step :]

    def fail(name: str, description: str, forged: bytes) -> Vector:
        return Vector(name=name, description=description, expect="integrity", blob=forged)

    yield fail("payload_truncated_at_last_boundary", "the last chunk dropped", head + c0 + c1)
    yield fail("payload_truncated_at_first_boundary", "only the first chunk left", head + c0)
    yield fail("payload_truncated_to_nothing", "header only", head)
    yield fail(
        "payload_truncated_inside_chunk",
        "the blob ends 100 bytes into chunk 1",
        head + c0 + c1[:100],
    )
    yield fail("payload_truncated_inside_tag", "the last tag is one byte short", blob[:-1])
    yield fail(
        "payload_last_flag_missing",
        "the last chunk sealed as not last",
        head + c0 + c1 + chunks([(2, False, parts[2])]),
    )
    yield fail(
        "payload_last_flag_early",
        "chunk 1 sealed as last, chunk 2 follows",
        head + c0 + chunks([(1, True, parts[1])]) + c2,
    )
    yield fail(
        "payload_ends_at_early_last_chunk",
        "two chunks, the second sealed as last",
        head + c0 + chunks([(1, True, parts[1])]),
    )
    yield fail("payload_chunks_reordered", "chunks 0 and 1 swapped", head + c1 + c0 + c2)
    yield fail("payload_chunk_duplicated", "chunk 0 in place of chunk 1", head + c0 + c0 + c2)
    yield fail(
        "payload_chunk_repeated_at_end", "the last chunk sent twice", head + c0 + c1 + c2 + c2
    )
    yield fail(
        "payload_chunk_altered", "one bit of chunk 1's ciphertext", head + c0 + flip(c1, 10) + c2
    )
    yield fail("payload_tag_altered", "one bit of the last chunk's tag", flip(blob, len(blob) - 1))
    yield fail(
        "payload_extra_empty_final_chunk",
        "a full chunk sealed as not last followed by an empty final chunk",
        header_of(CHUNK) + chunks([(0, False, parts[0]), (1, True, b"")]),
    )
    yield fail("payload_trailing_byte", "one byte after the last chunk", blob + b"\x00")
    other = seal(data, salt=OTHER_SALT)
    yield fail(
        "payload_of_another_blob",
        "this record's header with the payload of another encryption of it",
        head + other[header_size(other) :],
    )
    other_record = seal(data, attrs=attributes(record_id=bytes(16)))
    yield fail(
        "header_of_another_record",
        "another record's header with this payload",
        other_record[: header_size(other_record)] + body,
    )


GROUPS: tuple[Callable[[], Iterator[Vector]], ...] = (
    _successes,
    _header_failures,
    _non_canonical,
    _payload_failures,
)


def build_vectors() -> dict[str, str]:
    """File name to file content, for every vector."""
    files: dict[str, str] = {}
    for group in GROUPS:
        for vector in group():
            assert f"{vector.name}.json" not in files, vector.name
            files[f"{vector.name}.json"] = vector.to_json()
    return files


def main() -> None:
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    files = build_vectors()
    for stale in VECTORS_DIR.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, content in files.items():
        (VECTORS_DIR / name).write_text(content, encoding="utf-8")
    print(f"wrote {len(files)} vectors to {VECTORS_DIR}")


if __name__ == "__main__":
    main()
