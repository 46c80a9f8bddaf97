"""Errors of the Carevault client library outside the record format.

    VaultError       root of these errors
    ├── SealError    a sealed record key could not be opened (or sealed): wrong device key,
    │                wrong request context, wrong attributes, altered bytes. One opaque error
    │                for every cause; the cause is chained for logs.
    ├── KeyFileError the device key file is missing, damaged, or the passphrase is wrong
    ├── KeyServiceError          the key service could not be reached or answered nonsense
    │   └── KeyServiceRequestError  the key service refused a request (an RFC 9457 problem)
    │       ├── AuthenticationFailed  401: device unknown, revoked, or clock far off
    │       ├── AccessDenied          403: the caller may not do this
    │       ├── NotFound              404: no such principal, child, record or version
    │       ├── Conflict              409: the request clashes with the current state
    │       └── RateLimited           429: too many refused requests from this address;
    │                                 ``retry_after`` says how long to wait
    ├── RecordUnavailable  a key release was denied: missing, uncommitted, deleted or
    │                      forbidden (the service deliberately does not say which)
    ├── ShareRefused       a share's record was not released (the share revoked or expired,
    │                      its basis withdrawn or ended, its download cap spent); what was
    │                      received before it is kept
    ├── NotReceived        a share cannot be acknowledged from this download directory: some
    │                      of its records are not there, or no longer match; nothing was sent
    └── TransferError      moving ciphertext to or from storage failed
        └── UploadError    an upload did not complete; no record version became visible

The record format keeps its own tree in ``vault.format.errors``.
"""

from __future__ import annotations


class VaultError(Exception):
    """Root of the client library's errors."""


class SealError(VaultError):
    """A sealed key failed to open. Its cause is deliberately not told apart."""

    def __init__(self, message: str = "sealed key could not be opened") -> None:
        super().__init__(message)


class KeyFileError(VaultError):
    """The device key file cannot be used: missing, damaged, or the passphrase is wrong."""


class KeyServiceError(VaultError):
    """The key service could not be reached, or its answer was not what the API promises."""


class KeyServiceRequestError(KeyServiceError):
    """The key service answered a request with an RFC 9457 problem.

    ``status`` is the HTTP status; ``problem`` the problem object (``type``, ``title``,
    ``status``, ``detail``) as the service sent it, or an empty dict if it sent none.
    """

    def __init__(self, status: int, problem: dict[str, object], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


class AuthenticationFailed(KeyServiceRequestError):
    """401: the service did not accept this device's signature."""


class AccessDenied(KeyServiceRequestError):
    """403: the caller is not allowed to do this."""


class NotFound(KeyServiceRequestError):
    """404: the principal, child, record or version does not exist (or is hidden)."""


class Conflict(KeyServiceRequestError):
    """409: the request clashes with the current state (e.g. already committed)."""


class RateLimited(KeyServiceRequestError):
    """429: too many refused requests came from this address; ``retry_after`` is how many
    seconds the service asked to wait (None when it did not say)."""

    def __init__(
        self,
        status: int,
        problem: dict[str, object],
        message: str,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(status, problem, message)
        self.retry_after = retry_after


class RecordUnavailable(VaultError):
    """The key service did not release a record's key.

    Missing, uncommitted, deleted and forbidden records look the same on purpose.
    """

    def __init__(self, record_id: str, version: int | None = None) -> None:
        which = record_id if version is None else f"{record_id} version {version}"
        super().__init__(f"record {which} is unavailable to this device")
        self.record_id = record_id
        self.version = version


class ShareRefused(VaultError):
    """A record version of a share was not released to this device.

    ``record_id`` and ``version`` name the item; ``why`` says what the share's own state
    tells of the cause, as far as this device can see it; ``kept`` counts the items received
    before it was raised, which stay where they were written.
    """

    def __init__(self, *, share_id: str, record_id: str, version: int, why: str, kept: int) -> None:
        super().__init__(
            f"Share {share_id}: record {record_id} version {version} was not released to you: "
            f"{why}. {kept} record(s) already received are kept; ask whoever shared them "
            "if you need the rest."
        )
        self.share_id = share_id
        self.record_id = record_id
        self.version = version
        self.why = why
        self.kept = kept


class NotReceived(VaultError):
    """A share's acknowledgement was refused here, before anything was sent: record versions
    the share lists are not in the download directory's manifest, no longer match their
    files, or were received without the ciphertext digest a receipt lists.

    ``missing`` names them as (record id, version) pairs; running ``get_share`` into the same
    directory fetches them.
    """

    def __init__(
        self, *, share_id: str, directory: str, missing: tuple[tuple[str, int], ...]
    ) -> None:
        shown = ", ".join(f"{record_id} v{version}" for record_id, version in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        super().__init__(
            f"Share {share_id} was not acknowledged: {len(missing)} of its record(s) are not "
            f"received and checked in {directory} ({shown}{more}). Download the share into "
            "that directory first (carevault shares get), then acknowledge it; nothing was "
            "sent."
        )
        self.share_id = share_id
        self.missing = missing


class TransferError(VaultError):
    """Moving ciphertext to or from object storage failed."""


class UploadError(TransferError):
    """An upload did not complete; no record version became visible."""
