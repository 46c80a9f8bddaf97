"""Errors of the blob stores.

StorageError            root of these errors
├── InvalidObjectName   a name is not a Carevault object name (refused before any I/O)
├── ObjectNotFound      no object (or no multipart upload) by that name
├── ObjectExists        an upload would replace an object that already exists; objects are
│                       written once, so a committed blob cannot be swapped afterwards
├── InvalidToken        a blob URL token is forged, expired, damaged or used for the wrong
│                       method. One opaque error for every cause; the cause is chained.
├── UploadError         a multipart upload cannot be completed as asked: a part is
│                       missing, out of order, or its ETag does not match
├── WrongSize           an upload's body is not the exact size its URL was issued for
└── BackendError        the storage backend failed (network, permissions, disk); the
                        backend's own exception is chained
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of the blob stores' errors."""


class InvalidObjectName(StorageError):
    """The name is not a Carevault object name: 32 lowercase hex characters."""


class ObjectNotFound(StorageError):
    """There is no object, or no multipart upload, by that name."""


class ObjectExists(StorageError):
    """An upload would replace an existing object. Objects are written once; upload the new
    content as a new record version instead."""

    def __init__(self, message: str = "an object by that name already exists") -> None:
        super().__init__(message)


class InvalidToken(StorageError):
    """A blob URL token failed verification. Its cause is deliberately not told apart."""

    def __init__(self, message: str = "blob URL is invalid or has expired") -> None:
        super().__init__(message)


class UploadError(StorageError):
    """A multipart upload cannot be completed with the parts given; start it again."""


class WrongSize(StorageError):
    """An upload's body is larger (``larger``) or smaller than the size its URL was issued
    for; nothing was stored. Upload exactly that many bytes."""

    def __init__(self, *, expected: int, larger: bool) -> None:
        more_or_fewer = "more" if larger else "fewer"
        super().__init__(f"the upload sent {more_or_fewer} than the {expected} bytes it was for")
        self.expected = expected
        self.larger = larger


class BackendError(StorageError):
    """The storage backend failed; retry later, and see the chained cause for the reason."""
