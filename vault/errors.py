"""Errors of the Carevault client library outside the record format.

    VaultError       root of these errors
    └── SealError    a sealed record key could not be opened (or sealed): wrong device key,
                     wrong request context, wrong attributes, altered bytes. One opaque error
                     for every cause; the cause is chained for logs.

The record format keeps its own tree in ``vault.format.errors``.
"""

from __future__ import annotations


class VaultError(Exception):
    """Root of the client library's errors."""


class SealError(VaultError):
    """A sealed key failed to open. Its cause is deliberately not told apart."""

    def __init__(self, message: str = "sealed key could not be opened") -> None:
        super().__init__(message)
