"""A device's identity: its two private keys and the ids the key service gave it at enrolment.

A device holds an Ed25519 key that signs every request and an X25519 key that released record
keys are sealed to. Neither ever leaves the device; the key service only sees the public halves.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64encode(data: bytes) -> str:
    """base64url without padding, the API's binary encoding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Inverse of b64encode; tolerates missing padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class DeviceKeys:
    """The device's private signing and receiving keys. Their repr never shows key bytes."""

    signing_key: Ed25519PrivateKey = field(repr=False)
    receiving_key: X25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> DeviceKeys:
        return cls(
            signing_key=Ed25519PrivateKey.generate(),
            receiving_key=X25519PrivateKey.generate(),
        )

    def signing_public(self) -> bytes:
        return self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def receiving_public(self) -> bytes:
        return self.receiving_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class DeviceIdentity:
    """An enrolled device: where its key service is, who it is there, and its keys."""

    service_url: str
    principal_id: str
    device_id: str
    audience: str
    keys: DeviceKeys
