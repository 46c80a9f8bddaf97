"""Errors of the record format.

FormatError                 the bytes are not a well-formed record (precise message)
├── UnsupportedVersionError the record uses a format version or suite this code does not know
IntegrityError              authentication failed: wrong key, altered, truncated, reordered or
                            swapped data. One opaque error for every cause (chained for logs).
"""

from __future__ import annotations


class VaultFormatError(Exception):
    """Root of the record format's errors."""


class FormatError(VaultFormatError):
    """The input is not a well-formed Carevault record or attribute set."""


class UnsupportedVersionError(FormatError):
    """The record uses a format version or cipher suite this code does not support."""


class IntegrityError(VaultFormatError):
    """The record failed authentication. Its cause is deliberately not told apart."""

    def __init__(self, message: str = "record failed integrity check") -> None:
        super().__init__(message)
