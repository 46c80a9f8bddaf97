"""Client side of the signed-request profile (docs/SIGNING.md): an ``httpx.Auth`` that signs.

    client = httpx.Client(base_url=url, auth=RequestSigner(device_id, signing_key, audience))

Every request gets a fresh nonce, the service's audience header, an RFC 9530 Content-Digest of
its body (empty bodies included) and one RFC 9421 Ed25519 signature made with the
``http-message-signatures`` library.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

AUDIENCE_HEADER = "Carevault-Audience"
SIGNATURE_LABEL = "carevault"
SIGNATURE_TAG = "carevault"
COVERED_COMPONENTS = ("@method", "@target-uri", "content-digest", "carevault-audience")
NONCE_BYTES = 16
_NONCE_PARAMETER = re.compile(r';nonce="([0-9a-f]{32})"')

__all__ = [
    "AUDIENCE_HEADER",
    "COVERED_COMPONENTS",
    "SIGNATURE_LABEL",
    "SIGNATURE_TAG",
    "RequestSigner",
    "request_nonce",
    "sealing_context",
]


class _OneKey(HTTPSignatureKeyResolver):
    """The signer holds exactly one key: the device's."""

    def __init__(self, key_id: str, key: Ed25519PrivateKey) -> None:
        self._key_id = key_id
        self._key = key

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        if key_id != self._key_id:
            raise KeyError(key_id)
        return self._key


class RequestSigner(httpx.Auth):
    """Sign every request with a device's Ed25519 key for one key service audience.

    ``clock`` returns Unix seconds; it is a seam for tests that need a skewed ``created``.
    """

    requires_request_body = True

    def __init__(
        self,
        device_id: str,
        signing_key: Ed25519PrivateKey,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device_id = device_id
        self.audience = audience
        self._clock = clock
        self._signer = HTTPMessageSigner(
            signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(device_id, signing_key)
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Sign ``request`` in place, replacing any signature it already carries."""
        for name in ("Content-Digest", "Signature", "Signature-Input"):
            request.headers.pop(name, None)
        request.headers[AUDIENCE_HEADER] = self.audience
        self._signer.sign(
            request,
            key_id=self.device_id,
            created=datetime.fromtimestamp(self._clock(), tz=UTC),
            nonce=secrets.token_hex(NONCE_BYTES),
            label=SIGNATURE_LABEL,
            tag=SIGNATURE_TAG,
            covered_component_ids=COVERED_COMPONENTS,
            body=request.content,
        )


def request_nonce(request: httpx.Request) -> str:
    """The nonce a ``RequestSigner`` put into ``request`` (e.g. ``response.request``)."""
    found = _NONCE_PARAMETER.search(request.headers.get("Signature-Input", ""))
    if found is None:
        raise ValueError("the request was not signed by a RequestSigner")
    return found.group(1)


def sealing_context(device_id: str, nonce: str) -> bytes:
    """The context a key release is sealed under: device id, a zero byte, the request nonce."""
    return device_id.encode("ascii") + b"\x00" + nonce.encode("ascii")
