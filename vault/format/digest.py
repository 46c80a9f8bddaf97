"""How a ciphertext is identified (docs/FORMAT.md, "Ciphertext digest"; decision 0022).

A committed version's ciphertext is named by a 32-byte digest and the algorithm that made
it: BLAKE3-256 for everything written now, SHA-256 for versions committed before BLAKE3
was chosen (their digests stay valid: the algorithm is recorded per version). The key
service checks the stored object against it at commit, and every downloader checks the
bytes it received against it before using what it decrypted.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal, Protocol

import blake3

DigestAlg = Literal["blake3", "sha256"]
DIGEST_ALGS: tuple[DigestAlg, ...] = ("blake3", "sha256")
# What `encrypt` computes and new versions are committed with.
DEFAULT_DIGEST_ALG: DigestAlg = "blake3"
DIGEST_SIZE = 32


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> object: ...

    def digest(self) -> bytes: ...


def new_hasher(alg: str) -> Hasher:
    """A fresh hasher for ``alg`` ("blake3" or "sha256"); ValueError for any other."""
    if alg == "blake3":
        return blake3.blake3()
    if alg == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown ciphertext digest algorithm {alg!r}")


@dataclass(frozen=True)
class CiphertextDigest:
    """A ciphertext's digest with the algorithm that made it."""

    alg: DigestAlg
    value: bytes

    def __post_init__(self) -> None:
        if self.alg not in DIGEST_ALGS:
            raise ValueError(f"unknown ciphertext digest algorithm {self.alg!r}")
        if len(self.value) != DIGEST_SIZE:
            raise ValueError(f"a ciphertext digest is {DIGEST_SIZE} bytes")

    def matches(self, other: CiphertextDigest) -> bool:
        """Same algorithm and same value (compared in constant time)."""
        return self.alg == other.alg and hmac.compare_digest(self.value, other.value)


def digest_of(alg: DigestAlg, data: bytes | bytearray | memoryview) -> CiphertextDigest:
    hasher = new_hasher(alg)
    hasher.update(data)
    return CiphertextDigest(alg, hasher.digest())
