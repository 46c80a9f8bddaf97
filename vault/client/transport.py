"""Talking to the key service: signed JSON requests and RFC 9457 problems turned into errors.

The httpx transport is injectable (``transport=``), so tests can hand in an
``httpx.MockTransport`` or an ASGI transport and production uses the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vault.errors import (
    AccessDenied,
    AuthenticationFailed,
    Conflict,
    KeyServiceError,
    KeyServiceRequestError,
    NotFound,
)
from vault.signing import RequestSigner, request_nonce

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

_BY_STATUS: dict[int, type[KeyServiceRequestError]] = {
    401: AuthenticationFailed,
    403: AccessDenied,
    404: NotFound,
    409: Conflict,
}

# What a member of staff should do next, by status; the service's own detail is appended.
_ADVICE: dict[int, str] = {
    401: (
        "The key service did not accept this device. It may have been revoked, or this "
        "computer's clock may be wrong; ask your administrator to check your device."
    ),
    403: "You are not allowed to do this. If you think you should be, ask your manager.",
    404: "The key service does not know this item, or you may not see it.",
    409: "This clashes with what the key service already holds.",
}


def problem_error(response: httpx.Response) -> KeyServiceRequestError:
    """The error for a non-2xx key service response, with the problem's detail in its message."""
    problem: dict[str, object] = {}
    try:
        body = response.json()
        if isinstance(body, dict):
            problem = body
    except ValueError:
        problem = {}
    status = response.status_code
    told = str(problem.get("detail") or problem.get("title") or response.reason_phrase or "")
    advice = _ADVICE.get(status, f"The key service refused the request (HTTP {status}).")
    message = f"{advice} ({told})" if told else advice
    return _BY_STATUS.get(status, KeyServiceRequestError)(status, problem, message)


class SignedResponse:
    """A decoded JSON answer, the nonce its request was signed with (the sealing context),
    and its status (a 202 is a change proposed, not made)."""

    def __init__(self, body: Any, nonce: str, status: int) -> None:
        self.body = body
        self.nonce = nonce
        self.status = status


class KeyServiceTransport:
    """A session with one key service, signing every request as one device."""

    def __init__(
        self,
        base_url: str,
        *,
        signer: RequestSigner | None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, auth=signer, transport=transport, timeout=timeout
        )

    @classmethod
    def for_device(
        cls,
        base_url: str,
        *,
        device_id: str,
        signing_key: Ed25519PrivateKey,
        audience: str,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> KeyServiceTransport:
        signer = RequestSigner(device_id, signing_key, audience, clock=clock)
        return cls(base_url, signer=signer, transport=transport)

    def close(self) -> None:
        self._http.close()

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> SignedResponse:
        """Send one request; a problem answer raises, anything else is decoded JSON."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise KeyServiceError(
                f"Cannot reach the key service at {self.base_url}. Check the network and the "
                "service address, then try again."
            ) from exc
        if response.is_error:
            raise problem_error(response)
        signed = "Signature-Input" in response.request.headers
        nonce = request_nonce(response.request) if signed else ""
        if not response.content:
            return SignedResponse(None, nonce, response.status_code)
        try:
            return SignedResponse(response.json(), nonce, response.status_code)
        except ValueError as exc:
            raise KeyServiceError("the key service sent an answer that is not JSON") from exc

    def get(self, path: str, *, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params).body

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json if json is not None else {}).body

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path).body
