"""Sealing record keys to a device's X25519 key (docs/SEALING.md).

One key agreement per response: a fresh ephemeral X25519 key meets the device's receiving
key, HKDF-SHA256 turns the shared secret into one AES-256-GCM key, and every record key in
the response is sealed under it with its own random nonce and the record's canonical
attributes as associated data.

    sealing_key = HKDF-SHA256(ikm  = X25519(ephemeral, recipient),
                              salt = ephemeral_public || recipient_public,
                              info = "carevault/seal/v1" || context, length = 32)
    sealed      = nonce (12 random bytes) || AES-256-GCM(sealing_key, nonce, key, aad)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import SealError

SEAL_LABEL = b"carevault/seal/v1"
PUBLIC_KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


@dataclass(frozen=True)
class SealedBatch:
    """One response's ephemeral public key and its sealed keys, in the order they were given."""

    ephemeral_public: bytes
    sealed: list[bytes]


def _sealing_key(
    *, private: X25519PrivateKey, peer_public: bytes, salt: bytes, context: bytes
) -> AESGCM:
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
        # OpenSSL refuses low-order points (an all-zero shared secret) with a ValueError.
        shared = private.exchange(peer)
    except ValueError as exc:
        raise SealError("invalid X25519 public key") from exc
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=SEAL_LABEL + context)
    return AESGCM(hkdf.derive(shared))


def seal_batch(
    *, recipient_public: bytes, context: bytes, items: Sequence[tuple[bytes, bytes]]
) -> SealedBatch:
    """Seal each ``(aad, key)`` item to ``recipient_public`` with one fresh ephemeral key.

    ``context`` binds the batch to one request (device id and request nonce), so a response
    cannot be replayed as the answer to another request.
    """
    if len(recipient_public) != PUBLIC_KEY_SIZE:
        raise SealError("recipient key must be a 32-byte X25519 public key")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    aead = _sealing_key(
        private=ephemeral,
        peer_public=recipient_public,
        salt=ephemeral_public + recipient_public,
        context=context,
    )
    sealed = []
    for aad, key in items:
        nonce = os.urandom(NONCE_SIZE)
        sealed.append(nonce + aead.encrypt(nonce, key, aad))
    return SealedBatch(ephemeral_public=ephemeral_public, sealed=sealed)


class BatchOpener:
    """Opens the sealed keys of one response, deriving the sealing key once."""

    def __init__(
        self, *, recipient_private: X25519PrivateKey, ephemeral_public: bytes, context: bytes
    ) -> None:
        if len(ephemeral_public) != PUBLIC_KEY_SIZE:
            raise SealError("ephemeral key must be a 32-byte X25519 public key")
        recipient_public = recipient_private.public_key().public_bytes_raw()
        self._aead = _sealing_key(
            private=recipient_private,
            peer_public=ephemeral_public,
            salt=ephemeral_public + recipient_public,
            context=context,
        )

    def open(self, sealed: bytes, *, aad: bytes) -> bytes:
        """The key sealed in ``sealed`` for the record whose attributes are ``aad``."""
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise SealError()
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except InvalidTag as exc:
            raise SealError() from exc


def open_sealed(
    *,
    recipient_private: X25519PrivateKey,
    ephemeral_public: bytes,
    context: bytes,
    sealed: bytes,
    aad: bytes,
) -> bytes:
    """Open one sealed key; any failure is a SealError."""
    opener = BatchOpener(
        recipient_private=recipient_private, ephemeral_public=ephemeral_public, context=context
    )
    return opener.open(sealed, aad=aad)
