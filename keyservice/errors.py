"""Errors of the key service.

    KeyServiceError             root of every key service error
    ├── KeyUnwrapError          a wrapped key could not be unwrapped: wrong key or version,
    │                           wrong context or attributes, altered or truncated bytes.
    │                           One opaque error for every cause (chained for logs).
    └── RootKeyError            the root key provider cannot be used (the message says why
        │                       and what to do)
        └── InsecureKeyFileError  the local root key file is open to group or others

App-level errors (authentication, policy denials surfaced as errors, audit failures) belong
in this module as further branches under KeyServiceError, each with its line in this tree.
"""

from __future__ import annotations


class KeyServiceError(Exception):
    """Root of the key service's errors."""


class KeyUnwrapError(KeyServiceError):
    """A wrapped key failed to unwrap. Its cause is deliberately not told apart."""

    def __init__(self, message: str = "wrapped key could not be unwrapped") -> None:
        super().__init__(message)


class RootKeyError(KeyServiceError):
    """The root key provider is unusable: unreadable or malformed key file, for example."""


class InsecureKeyFileError(RootKeyError):
    """The root key file's permissions let someone other than its owner read or change it."""
