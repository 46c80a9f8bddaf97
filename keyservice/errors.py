"""Errors of the key service.

    KeyServiceError             root of every key service error
    ├── AuthenticationError     a request's signature is not accepted; ``reason`` is a short
    │                           code for the log and the audit, never shown to the client
    ├── AuditUnavailableError   the audit entry could not be written, so nothing is released
    │                           or changed (answered 503; check the database)
    ├── AuditChainError         the chain's newest entry does not verify under the service's
    │                           audit MAC key: nothing is appended or signed after it (the
    │                           message says what to restore or check)
    ├── InvalidChangeError      a relationship or proposal cannot be applied as asked (answered
    │                           422 with the message, which says what to change)
    ├── DeniedError             the caller may not do this, found below the API: ``action``,
    │   │                       ``detail`` and ``status`` make the refusal's audit entry and
    │   │                       answer (a 404 that never says whether the target exists, or
    │   │                       a 403); the API layer audits it and answers
    │   └── RecordRefusedError  a request about a record is refused
    │       ├── RecordUnavailableError  missing, or not the caller's to use: one answer that
    │       │                           never tells which (answered 404)
    │       ├── RecordForbiddenError    the caller may not add records for these children (403)
    │       └── UploadMismatchError     the stored object is not the one the commit claims (409)
    ├── CiphertextTooLargeError a new version's ciphertext is larger than the service takes
    │                           (answered 413, before anything is written)
    ├── KeyUnwrapError          a wrapped key could not be unwrapped: wrong key or version,
    │                           wrong context or attributes, altered or truncated bytes.
    │                           One opaque error for every cause (chained for logs).
    ├── InsecureDataError       the data directory or the SQLite database is open to group
    │                           or others (the message names the path and the chmod to run)
    └── RootKeyError            the root key provider cannot be used (the message says why
        │                       and what to do)
        └── InsecureKeyFileError  the local root key file is open to group or others

App-level errors (authentication, policy denials surfaced as errors, audit failures) belong
in this module as further branches under KeyServiceError, each with its line in this tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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


class InsecureDataError(KeyServiceError):
    """The data directory or the database can be read or changed by someone other than the
    service's account."""


class AuthenticationError(KeyServiceError):
    """The request is not authentically from an enrolled, active device."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuditUnavailableError(KeyServiceError):
    """The audit log could not be appended to; the request fails closed."""

    def __init__(self, message: str = "audit log unavailable") -> None:
        super().__init__(message)


class AuditChainError(KeyServiceError):
    """The audit chain cannot be continued or checkpointed under this service's MAC key."""


class InvalidChangeError(KeyServiceError):
    """A change to who can read is not valid as asked; the message tells the caller why."""


class DeniedError(KeyServiceError):
    """The caller may not do this (not audited yet). The API layer rolls back, audits
    ``action`` with ``detail`` as a denial, and answers ``status`` with the message, which
    says what to do next."""

    status = 404

    def __init__(
        self,
        message: str,
        *,
        action: str,
        detail: Mapping[str, Any],
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.action = action
        self.detail = detail
        if status is not None:
            self.status = status


class RecordRefusedError(DeniedError):
    """A request about a record is refused."""


class RecordUnavailableError(RecordRefusedError):
    """No such record or version, or not one the caller may use; never says which."""


class RecordForbiddenError(RecordRefusedError):
    """The caller may not add records for these children."""

    status = 403


class UploadMismatchError(RecordRefusedError):
    """The stored object does not match the size and SHA-256 its commit claims."""

    status = 409


class CiphertextTooLargeError(KeyServiceError):
    """A new version's ciphertext is larger than the service's limit."""
