"""What the fuzz targets share: a deterministic signed request and the service's verifier.

The targets call the service's own parsing code (``keyservice.auth.verifier.verify_request``,
``vault.format.metadata``, ``keyservice.catalog.imports.parse``) as the running service would
on bytes from the network; they never reimplement it.
"""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from keyservice.auth.verifier import SignedRequest, verify_request
from keyservice.errors import AuthenticationError, Refusal
from keyservice.ids import is_id
from vault.signing import RequestSigner

AUDIENCE = "carevault-fuzz"
DEVICE_ID = "ab" * 16
NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
URL = "http://127.0.0.1:8000/v1/keys/release?x=1"
BODY = b'{"items":[{"record_id":"00000000000000000000000000000000","version":1}]}'


def resolve_key(key_id: str) -> Ed25519PublicKey:
    """The one enrolled device; any other key id is unknown, as the service's lookup
    (``keyservice.auth.refusals.DeviceLookup.resolve``) says."""
    if not is_id(key_id) or key_id != DEVICE_ID:
        raise AuthenticationError(Refusal.UNKNOWN_DEVICE)
    return KEY.public_key()


def signed_request(body: bytes = BODY) -> httpx.Request:
    """A request signed by the SDK's signer at ``NOW``, as a device sends it."""
    request = httpx.Request("POST", URL, content=body, headers={"Content-Type": "application/json"})
    RequestSigner(DEVICE_ID, KEY, AUDIENCE, clock=lambda: NOW).sign(request)
    return request


def verify(request_headers: list[tuple[str, str]], body: bytes) -> SignedRequest:
    """The service's verification of a POST to ``URL`` with these headers and body."""
    return verify_request(
        method="POST",
        url=URL,
        headers=request_headers,
        body=body,
        audience=AUDIENCE,
        now=NOW,
        resolve_key=resolve_key,
    )


def header_list(request: httpx.Request) -> list[tuple[str, str]]:
    return [(name, value) for name, value in request.headers.multi_items()]
