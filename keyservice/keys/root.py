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

    Implementations (chosen by ``CAREVAULT_ROOT_KEY``, keys/select.py): ``LocalFileRootKeyProvider``
    (a key file of mode 0600: the embedded default), ``KmsRootKeyProvider`` (AWS KMS: the root
    key never leaves the KMS; ``context`` becomes the call's encryption context),
    ``Pkcs11RootKeyProvider`` (an HSM: AES-256-GCM inside the token, the key never leaves it)
    and ``FakeRootKeyProvider`` (tests). docs/decisions/0016-root-key-providers.md says what
    each does per call.
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

    def rewrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """``wrapped`` wrapped again under the current version, same ``context``: one call to
        the provider (a KMS re-encrypts inside itself, the plaintext never leaves it); any
        failure to open ``wrapped`` is a KeyUnwrapError."""
        ...

    def generate(self, *, context: bytes) -> tuple[bytes, bytes]:
        """A fresh random key and its wrap under the current version bound to ``context``, in
        one call to the provider where it can (a KMS's ``GenerateDataKey``)."""
        ...

    def identity(self) -> str:
        """Which provider and key this is (``file``, ``kms:KEY_ID``, ``pkcs11:TOKEN/LABEL``),
        recorded with each wrap so a move between providers knows what is left to move."""
        ...

    def current_version(self) -> int:
        """The version new wraps use."""
        ...

    def rotate(self) -> int:
        """Add a new root key version and make it current; older versions still unwrap."""
        ...
