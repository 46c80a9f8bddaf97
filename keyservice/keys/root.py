"""The root key provider interface: the deployment's versioned root key wraps child keys only."""

from __future__ import annotations

import secrets
from typing import Protocol

KEY_SIZE = 32


def generate_key() -> bytes:
    """A fresh random 256-bit key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_SIZE)


class RootKeyProvider(Protocol):
    """Holds the versioned root key and wraps child keys with it; never hands the root key out.

    Implementations: ``LocalFileRootKeyProvider`` (a key file of mode 0600: the provider of
    every deployment today, the compose topology included) and ``FakeRootKeyProvider``
    (tests). There is no KMS- or HSM-backed provider yet (issue 15); one would implement
    this protocol with the KMS's encrypt and decrypt calls, ``context`` as their encryption
    context, so that the root key never leaves the KMS.
    """

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Encrypt ``plaintext`` under the current root key version, bound to ``context``.

        The output embeds the version used, so unwrapping keeps working after a rotation.
        """
        ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Decrypt what ``wrap`` produced with the same ``context``; any failure is a
        KeyUnwrapError."""
        ...

    def current_version(self) -> int:
        """The version new wraps use."""
        ...

    def rotate(self) -> int:
        """Add a new root key version and make it current; older versions still unwrap."""
        ...
