"""An in-memory root key provider for tests of the parts built on top of it."""

from __future__ import annotations

from keyservice.keys.keyring import Keyring
from keyservice.keys.root import generate_key


class FakeRootKeyProvider:
    """Behaves like a real provider (versions, rotation, opaque failures) but keeps nothing."""

    def __init__(self) -> None:
        self._keyring = Keyring({1: generate_key()})

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        return self._keyring.wrap(plaintext, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return self._keyring.unwrap(wrapped, context=context)

    def rewrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return self.wrap(self.unwrap(wrapped, context=context), context=context)

    def generate(self, *, context: bytes) -> tuple[bytes, bytes]:
        key = generate_key()
        return key, self.wrap(key, context=context)

    def identity(self) -> str:
        return "fake"

    def current_version(self) -> int:
        return self._keyring.current_version

    def rotate(self) -> int:
        self._keyring = self._keyring.with_version(generate_key())
        return self._keyring.current_version
