"""The chunked payload (docs/FORMAT.md, "Payload"): AES-256-GCM in the STREAM construction.

    nonce_i = nonce_prefix (7) || u32(i) || flag_i,  flag_i = 0x01 only for the last chunk

Encryption and decryption work chunk by chunk in two reused buffers, so memory stays at about
two chunks whatever the size of the record. Buffers are handed to `dst.write` as memoryviews
and reused afterwards, which the io contract allows (a writer may only use the buffer during
the call).
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.format.errors import FormatError, IntegrityError
from vault.format.keys import PayloadKeys
from vault.format.metadata import TAG_SIZE

LAST_CHUNK_FLAG = 0x01


class Writable(Protocol):
    """Where ciphertext or plaintext goes: anything with a binary `write`."""

    def write(self, data: bytes | memoryview, /) -> object: ...


_COUNTER_AND_FLAG = struct.Struct(">IB")


def chunk_count(size: int, chunk_size: int) -> int:
    """Number of chunks of a plaintext: an empty plaintext is one empty final chunk."""
    return max(1, -(-size // chunk_size))


def chunk_plaintext_size(index: int, *, size: int, chunk_size: int) -> int:
    """Plaintext bytes in chunk `index`: full chunks, then the remainder in the last."""
    return min(chunk_size, size - index * chunk_size)


def payload_size(size: int, chunk_size: int) -> int:
    """Ciphertext bytes of the whole payload."""
    return size + TAG_SIZE * chunk_count(size, chunk_size)


class ChunkCipher:
    """Seals and opens single chunks; the nonce is built from the chunk's position."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._aead = AESGCM(keys.key)
        self._prefix = keys.nonce_prefix

    def __repr__(self) -> str:
        return "ChunkCipher(<key hidden>)"

    def nonce(self, index: int, *, last: bool) -> bytes:
        return self._prefix + _COUNTER_AND_FLAG.pack(index, LAST_CHUNK_FLAG if last else 0)

    def seal_into(self, index: int, *, last: bool, plaintext: memoryview, out: memoryview) -> None:
        self._aead.encrypt_into(self.nonce(index, last=last), plaintext, None, out)

    def open_into(self, index: int, *, last: bool, ciphertext: memoryview, out: memoryview) -> None:
        try:
            self._aead.decrypt_into(self.nonce(index, last=last), ciphertext, None, out)
        except InvalidTag as exc:
            raise IntegrityError() from exc


def read_full(src: BinaryIO, view: memoryview) -> int:
    """Fill `view` from `src` unless the stream ends first; return the bytes read."""
    readinto = getattr(src, "readinto", None)
    filled = 0
    while filled < len(view):
        if readinto is not None:
            got = readinto(view[filled:])
        else:
            data = src.read(len(view) - filled)
            got = len(data)
            view[filled : filled + got] = data
        if not got:
            break
        filled += got
    return filled


def encrypt_payload(
    cipher: ChunkCipher, *, src: BinaryIO, dst: Writable, size: int, chunk_size: int
) -> None:
    """Seal exactly `size` bytes of `src` into `dst`; a source of another length is an error."""
    plain = memoryview(bytearray(chunk_size))
    sealed = memoryview(bytearray(chunk_size + TAG_SIZE))
    count = chunk_count(size, chunk_size)
    for index in range(count):
        want = chunk_plaintext_size(index, size=size, chunk_size=chunk_size)
        got = read_full(src, plain[:want])
        if got != want:
            raise FormatError(
                f"the source ended after {index * chunk_size + got} bytes; "
                f"the metadata declares {size}"
            )
        last = index == count - 1
        if last and src.read(1):
            raise FormatError(f"the source has more than the {size} bytes the metadata declares")
        out = sealed[: want + TAG_SIZE]
        cipher.seal_into(index, last=last, plaintext=plain[:want], out=out)
        dst.write(out)


def decrypt_payload(
    cipher: ChunkCipher, *, src: BinaryIO, dst: Writable, size: int, chunk_size: int
) -> None:
    """Open every chunk of `src` into `dst`, each written only once it has authenticated.

    The last chunk is written only after it authenticates as the last and `src` is seen to
    end right after it, so a truncated or extended blob never yields a complete-looking output.
    """
    sealed = memoryview(bytearray(chunk_size + TAG_SIZE))
    plain = memoryview(bytearray(chunk_size))
    count = chunk_count(size, chunk_size)
    for index in range(count):
        want = chunk_plaintext_size(index, size=size, chunk_size=chunk_size)
        got = read_full(src, sealed[: want + TAG_SIZE])
        if got != want + TAG_SIZE:
            raise IntegrityError() from ValueError(f"payload is truncated in chunk {index}")
        last = index == count - 1
        out = plain[:want]
        cipher.open_into(index, last=last, ciphertext=sealed[: want + TAG_SIZE], out=out)
        if last and src.read(1):
            raise IntegrityError() from ValueError("bytes follow the last chunk")
        dst.write(out)
