"""Errors of the key service, raised below the API and answered by it (keyservice/problems.py).

    KeyServiceError             root of every key service error
    ├── AuthenticationError     a request is refused as not authentically from an enrolled,
    │                           active device; ``reason`` (a ``Refusal``) goes to the log
    │                           and the audit, never to the client (answered with the one
    │                           generic 401)
    ├── RefusedError            the caller may not do what it asked; the refusal is already
    │                           audited (answered with ``status``, 403 or 404, and the
    │                           message, which says what the caller can do)
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
Nothing here knows HTTP: the API layer maps each branch to its answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Refusal(StrEnum):
    """Why a request was refused as unauthenticated (docs/SIGNING.md, "What the verifier MUST
    reject"): the ``reason`` of its ``auth.reject`` entry and of its log line."""

    # The signature and its parameters (keyservice/auth/verifier.py).
    MISSING_SIGNATURE = "missing_signature"
    WRONG_TAG = "wrong_tag"
    WRONG_ALG = "wrong_alg"
    MISSING_COMPONENT = "missing_component"
    UNEXPECTED_PARAMETER = "unexpected_parameter"
    BAD_SIGNATURE = "bad_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    WRONG_AUDIENCE = "wrong_audience"
    MISSING_CREATED = "missing_created"
    CREATED_TOO_OLD = "created_too_old"
    CREATED_IN_FUTURE = "created_in_future"
    MISSING_NONCE = "missing_nonce"
    # The device (keyservice/auth/refusals.py, and again in a release's audit batch).
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    REVOKED_PRINCIPAL = "revoked_principal"
    # The nonce (keyservice/auth/nonces.py, and in a release's audit batch).
    REPLAYED_NONCE = "replayed_nonce"
    # Not the caller's fault: the device could not be looked up. Never audited as a
    # rejection; the request is answered 503 with the database error.
    DATABASE_UNAVAILABLE = "database_unavailable"


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

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason = reason


class RefusedError(KeyServiceError):
    """The caller may not do what it asked, and its refusal is audited.

    ``status`` is the answer's status (403: the caller may not do this at all; 404: one
    answer whether the thing is missing or hidden from the caller), recorded in the audit
    entry too; the message is the answer's detail.
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


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
