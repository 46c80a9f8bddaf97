"""Server side of the signed-request profile (docs/SIGNING.md), without a database.

``verify_request`` checks one request's signature, covered components, digest, audience,
created time and nonce shape, and returns who signed it. Looking the key up (and rejecting
unknown or revoked devices) is the caller's ``resolve_key``; the replay cache is the caller's
too, because it lives in the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from keyservice.errors import AuthenticationError, Refusal
from vault.signing import COVERED_COMPONENTS, SIGNATURE_LABEL, SIGNATURE_TAG

SKEW = timedelta(seconds=60)
_NONCE = re.compile(r"[0-9a-f]{32}")
_AUDIENCE_COMPONENT = '"carevault-audience"'
# The profile's covered components as the library reports them: Structured Field strings
# without parameters. A component signed with parameters is another component.
_REQUIRED = frozenset(f'"{name}"' for name in COVERED_COMPONENTS)
_ALLOWED_PARAMETERS = frozenset({"alg", "created", "keyid", "nonce", "tag"})


@dataclass(frozen=True)
class SignedRequest:
    """What a verified signature tells the service: the device, its nonce and its created time."""

    device_id: str
    nonce: str
    created: int


@dataclass(frozen=True)
class _Message:
    """The minimal request view the signature library reads."""

    method: str
    url: str
    headers: _Fields


class _Fields:
    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def items(self) -> Iterable[tuple[str, str]]:
        return iter(self._fields)


class _Resolver(HTTPSignatureKeyResolver):
    def __init__(self, resolve_key: Callable[[str], Ed25519PublicKey]) -> None:
        self._resolve_key = resolve_key

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        return self._resolve_key(key_id)


class _Verifier(HTTPMessageVerifier):
    """The library's verifier, with the profile's parameters and the service's clock."""

    signature_metadata_parameters: ClassVar[Any] = _ALLOWED_PARAMETERS

    def __init__(self, resolver: _Resolver, now: float) -> None:
        super().__init__(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
        self._now = now

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        created = sig_input.params.get("created")
        if type(created) is not int:
            raise AuthenticationError(Refusal.MISSING_CREATED)
        if created > self._now + SKEW.total_seconds():
            raise AuthenticationError(Refusal.CREATED_IN_FUTURE)
        if created < self._now - SKEW.total_seconds():
            raise AuthenticationError(Refusal.CREATED_TOO_OLD)
        if sig_input.params.get("alg") != algorithms.ED25519.algorithm_id:
            raise AuthenticationError(Refusal.WRONG_ALG)


def verify_request(
    *,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    audience: str,
    now: float,
    resolve_key: Callable[[str], Ed25519PublicKey],
) -> SignedRequest:
    """Verify one signed request or raise ``AuthenticationError`` naming the reason.

    ``resolve_key`` maps a key id to the device's public key, raising ``AuthenticationError``
    for an unknown or revoked device.
    """
    verifier = _Verifier(_Resolver(resolve_key), now)
    message = _Message(method=method, url=url, headers=_Fields(headers))
    try:
        results = verifier.verify(message, max_age=None, expect_tag=SIGNATURE_TAG)
        # The library's require_components would parse every component id of the profile
        # and of each signature again (a fifth of a verification); the covered components
        # come back serialized, so the profile's four are looked up by their exact text.
        # Checked before the body, as the library would, so a signature that leaves the
        # digest out is a missing component, not a digest mismatch.
        for result in results:
            if not _REQUIRED.issubset(result.covered_components):
                raise AuthenticationError(Refusal.MISSING_COMPONENT)
        results = verifier.verify_body(message, results, body)
    except HTTPMessageSignaturesException as exc:
        raise _reason(exc) from exc
    if len(results) != 1 or results[0].label != SIGNATURE_LABEL:
        raise AuthenticationError(Refusal.MISSING_SIGNATURE)
    result = results[0]
    if result.covered_components.get(_AUDIENCE_COMPONENT) != audience:
        raise AuthenticationError(Refusal.WRONG_AUDIENCE)
    nonce = result.nonce
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise AuthenticationError(Refusal.MISSING_NONCE)
    created = result.parameters["created"]
    assert isinstance(created, int)
    return SignedRequest(device_id=str(result.parameters["keyid"]), nonce=nonce, created=created)


def _reason(exc: BaseException) -> AuthenticationError:
    """Name the failure for the log: our own reasons pass through, the library's are grouped."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, AuthenticationError):
            return cause
        cause = cause.__cause__
    text = str(exc).lower()
    # Order matters: "Required component content-digest was not covered" names the digest
    # but is a missing component, so "not covered" is looked for first.
    for needle, reason in (
        ("not covered", Refusal.MISSING_COMPONENT),
        ("content-digest", Refusal.DIGEST_MISMATCH),
        ("expected tag", Refusal.WRONG_TAG),
        ("algorithm", Refusal.WRONG_ALG),
        ("metadata parameter", Refusal.UNEXPECTED_PARAMETER),
        ("keyid", Refusal.MISSING_SIGNATURE),
        ("expected", Refusal.MISSING_SIGNATURE),
        ("no signatures", Refusal.MISSING_SIGNATURE),
    ):
        if needle in text:
            return AuthenticationError(reason)
    return AuthenticationError(Refusal.BAD_SIGNATURE)
