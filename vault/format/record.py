"""Encrypting and decrypting whole records (docs/FORMAT.md, "Decoding"): the public entry points."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO

from vault.format.attributes import ID_SIZE, MAX_CHILDREN, RecordAttributes
from vault.format.digest import DEFAULT_DIGEST_ALG, CiphertextDigest, DigestAlg, new_hasher
from vault.format.errors import FormatError
from vault.format.header import (
    ATTRIBUTES_FIXED_SIZE,
    DEFAULT_CHUNK_SIZE,
    MAC_SIZE,
    MAGIC,
    Header,
    build_header,
    check_chunk_size,
    parse_header,
    verify_header,
)
from vault.format.keys import COMMITMENT_SIZE, SALT_SIZE, check_record_key, payload_keys
from vault.format.metadata import TAG_SIZE, Metadata
from vault.format.payload import (
    ChunkCipher,
    Writable,
    decrypt_payload,
    encrypt_payload,
    payload_size,
)


@dataclass(frozen=True)
class EncryptResult:
    """What the uploader needs to commit a version without reading the blob again."""

    ciphertext_size: int
    digest: CiphertextDigest


class _DigestingWriter:
    """Passes writes through to `dst` while hashing and counting them."""

    def __init__(self, dst: BinaryIO, alg: DigestAlg) -> None:
        self._dst = dst
        self.alg = alg
        self.digest = new_hasher(alg)
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self.digest.update(data)
        self.size += len(data)
        self._dst.write(data)
        return len(data)


def ciphertext_size(
    metadata: Metadata, *, child_count: int, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> int:
    """The exact size of the blob `encrypt` writes, to announce an upload before encrypting.

    Only the number of children matters of the attributes, so this can be called before the
    key service has assigned the record id.
    """
    check_chunk_size(chunk_size)
    if not 1 <= child_count <= MAX_CHILDREN:
        raise FormatError(f"a record belongs to between 1 and {MAX_CHILDREN} children")
    header = (
        len(MAGIC)
        + ATTRIBUTES_FIXED_SIZE
        + child_count * ID_SIZE
        + 2
        + SALT_SIZE
        + COMMITMENT_SIZE
        + 2
        + len(metadata.encode())
        + TAG_SIZE
        + MAC_SIZE
    )
    return header + payload_size(metadata.size, chunk_size)


def encrypt(
    *,
    record_key: bytes,
    attributes: RecordAttributes,
    metadata: Metadata,
    src: BinaryIO,
    dst: BinaryIO,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    digest_alg: DigestAlg = DEFAULT_DIGEST_ALG,
) -> EncryptResult:
    """Encrypt exactly `metadata.size` bytes of `src` into `dst`; also hash what was written
    (BLAKE3-256 unless `digest_alg` says "sha256"): the digest a commit names.

    A source with fewer or more bytes than declared is a FormatError; `dst` then holds a
    partial blob that the caller must discard. `dst.write` is handed views of buffers that are
    reused once it returns (as the io contract allows): a writer that keeps data must copy it.
    """
    writer = _DigestingWriter(dst, digest_alg)
    _encrypt(
        record_key=record_key,
        attributes=attributes,
        metadata=metadata,
        src=src,
        dst=writer,
        chunk_size=chunk_size,
        salt=os.urandom(SALT_SIZE),
    )
    return EncryptResult(
        ciphertext_size=writer.size, digest=CiphertextDigest(writer.alg, writer.digest.digest())
    )


def encrypt_without_digest(
    *,
    record_key: bytes,
    attributes: RecordAttributes,
    metadata: Metadata,
    src: BinaryIO,
    dst: BinaryIO,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:
    """`encrypt` without hashing the ciphertext (the digest costs more than AES-GCM).

    For callers that do not need the digest; returns the ciphertext size.
    """
    _encrypt(
        record_key=record_key,
        attributes=attributes,
        metadata=metadata,
        src=src,
        dst=dst,
        chunk_size=chunk_size,
        salt=os.urandom(SALT_SIZE),
    )
    return ciphertext_size(metadata, child_count=len(attributes.child_ids), chunk_size=chunk_size)


def _encrypt(
    *,
    record_key: bytes,
    attributes: RecordAttributes,
    metadata: Metadata,
    src: BinaryIO,
    dst: Writable,
    chunk_size: int,
    salt: bytes,
) -> None:
    """The seam through which test vectors fix the salt."""
    check_record_key(record_key)
    log2 = check_chunk_size(chunk_size)
    dst.write(
        build_header(
            record_key=record_key,
            attributes=attributes,
            chunk_size_log2=log2,
            salt=salt,
            metadata_bytes=metadata.encode(),
        )
    )
    cipher = ChunkCipher(payload_keys(record_key=record_key, salt=salt, attributes=attributes))
    encrypt_payload(cipher, src=src, dst=dst, size=metadata.size, chunk_size=chunk_size)


def open_header(
    *, record_key: bytes, attributes: RecordAttributes, src: BinaryIO | bytes
) -> Header:
    """Read and verify the header from a stream or from the blob's first bytes.

    A stream is left at the first payload byte. Bytes may run past the header (reading
    MAX_HEADER_SIZE bytes is always enough); the surplus is ignored.
    """
    stream = io.BytesIO(src) if isinstance(src, bytes | bytearray) else src
    return verify_header(parse_header(stream.read), record_key=record_key, attributes=attributes)


def decrypt(
    *, record_key: bytes, attributes: RecordAttributes, src: BinaryIO, dst: BinaryIO
) -> Metadata:
    """Decrypt a whole blob into `dst` and return its metadata.

    Nothing is written before the header verifies. Chunks are written as they authenticate,
    so on an IntegrityError `dst` may hold a prefix of the plaintext: discard it. As with
    `encrypt`, `dst.write` gets views of reused buffers.
    """
    header = open_header(record_key=record_key, attributes=attributes, src=src)
    cipher = ChunkCipher(
        payload_keys(record_key=record_key, salt=header.salt, attributes=attributes)
    )
    decrypt_payload(
        cipher, src=src, dst=dst, size=header.metadata.size, chunk_size=header.chunk_size
    )
    return header.metadata
