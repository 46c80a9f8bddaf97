"""A set of versioned 256-bit root keys and the wrapped-key layout they share.

    wrapped = version (u32, big-endian) || nonce (12 random bytes) || AES-256-GCM ciphertext
    aad     = "carevault/root/v1" || version (u32, big-endian) || context

The version is in the clear so the right key can be picked, and it is authenticated as part
of the associated data.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyservice.errors import KeyUnwrapError, RootKeyError
from keyservice.keys.root import KEY_SIZE

ROOT_LABEL = b"carevault/root/v1"
MAX_VERSION = 2**32 - 1
NONCE_SIZE = 12
TAG_SIZE = 16
_VERSION = struct.Struct(">I")


class Keyring:
    """Immutable: rotation builds a new keyring with one more version."""

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise RootKeyError("a keyring needs at least one root key version")
        for version, key in keys.items():
            if not 1 <= version <= MAX_VERSION:
                raise RootKeyError(f"root key version {version} is out of range")
            if len(key) != KEY_SIZE:
                raise RootKeyError(f"root key version {version} is not {KEY_SIZE} bytes")
        self._keys = dict(keys)
        self._ciphers = {version: AESGCM(key) for version, key in keys.items()}
        self.current_version = max(keys)

    @property
    def keys(self) -> Mapping[int, bytes]:
        """The raw keys by version, for persisting the keyring; never log or return them."""
        return dict(self._keys)

    def with_version(self, key: bytes) -> Keyring:
        """A keyring with ``key`` added as the new current version."""
        return Keyring({**self._keys, self.current_version + 1: key})

    def has_version_of(self, wrapped: bytes) -> bool:
        """Whether ``wrapped`` names a version this keyring holds."""
        return len(wrapped) >= _VERSION.size and _VERSION.unpack_from(wrapped)[0] in self._ciphers

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        header = _VERSION.pack(self.current_version)
        nonce = os.urandom(NONCE_SIZE)
        ciphertext = self._ciphers[self.current_version].encrypt(
            nonce, plaintext, ROOT_LABEL + header + context
        )
        return header + nonce + ciphertext

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        if len(wrapped) < _VERSION.size + NONCE_SIZE + TAG_SIZE:
            raise KeyUnwrapError()
        header = wrapped[: _VERSION.size]
        cipher = self._ciphers.get(_VERSION.unpack(header)[0])
        if cipher is None:
            raise KeyUnwrapError()
        nonce = wrapped[_VERSION.size : _VERSION.size + NONCE_SIZE]
        ciphertext = wrapped[_VERSION.size + NONCE_SIZE :]
        try:
            return cipher.decrypt(nonce, ciphertext, ROOT_LABEL + header + context)
        except InvalidTag as exc:
            raise KeyUnwrapError() from exc
