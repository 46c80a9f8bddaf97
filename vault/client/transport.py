"""Talking to the key service: signed JSON requests, RFC 9457 problems turned into errors,
and each answer parsed once into typed models (``vault.client.wire``).

The httpx transport is injectable (``transport=``), so tests can hand in an
``httpx.MockTransport`` or an ASGI transport and production uses the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vault.client import wire
from vault.client.fields import MalformedAnswer
from vault.client.models import Proposal
from vault.errors import (
    AccessDenied,
    AuthenticationFailed,
    Conflict,
    KeyServiceError,
    KeyServiceRequestError,
    NotFound,
    RateLimited,
)
from vault.signing import RequestSigner, request_nonce

T = TypeVar("T")
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
    429: (
        "The key service refused too many requests from this address and is not answering "
        "it for a while. Check this computer's device and clock, then try again later."
    ),
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
    if status == 429:
        retry_after = _seconds(response.headers.get("Retry-After"))
        if retry_after is not None:
            message = f"{message} Try again in {retry_after} s."
        return RateLimited(status, problem, message, retry_after=retry_after)
    return _BY_STATUS.get(status, KeyServiceRequestError)(status, problem, message)


def _seconds(header: str | None) -> int | None:
    """Retry-After as a number of seconds (the key service never sends an HTTP date)."""
    try:
        return max(int(header), 0) if header is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Signed(Generic[T]):
    """A parsed answer and the nonce its request was signed with: the context a record key
    in it was sealed under."""

    value: T
    nonce: str


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

    def _exchange(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """Send one request; a problem answer raises."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise KeyServiceError(
                f"Cannot reach the key service at {self.base_url}. Check the network and the "
                "service address, then try again."
            ) from exc
        if response.is_error:
            raise problem_error(response)
        return response

    @staticmethod
    def _parsed(response: httpx.Response, parse: Callable[[object], T]) -> T:
        """The answer's JSON body (None when it has none) as ``parse`` reads it."""
        try:
            body = response.json() if response.content else None
        except ValueError as exc:
            raise KeyServiceError("the key service sent an answer that is not JSON") from exc
        try:
            return parse(body)
        except MalformedAnswer as exc:
            request = response.request
            raise KeyServiceError(
                f"The key service's answer to {request.method} {request.url.path} is not what "
                f"this client expects ({exc}). Update the client or the key service."
            ) from exc

    def get(
        self, path: str, parse: Callable[[object], T], *, params: dict[str, str] | None = None
    ) -> T:
        return self._parsed(self._exchange("GET", path, params=params), parse)

    def post(self, path: str, parse: Callable[[object], T], json: Any = None) -> T:
        return self._parsed(self._exchange("POST", path, json=_body(json)), parse)

    def post_signed(self, path: str, parse: Callable[[object], T], json: Any) -> Signed[T]:
        """POST, and keep the request's signature nonce: the answer holds sealed keys."""
        response = self._exchange("POST", path, json=json)
        return Signed(self._parsed(response, parse), request_nonce(response.request))

    def propose(self, path: str, made: Callable[[object], T], json: Any = None) -> T | Proposal:
        """POST a change that may need a second person: a 202 is the proposal it became,
        any other success what ``made`` reads of the change made at once."""
        response = self._exchange("POST", path, json=_body(json))
        if response.status_code == 202:
            return self._parsed(response, wire.proposal)
        return self._parsed(response, made)

    def delete(self, path: str) -> None:
        self._exchange("DELETE", path)


def _body(json: Any) -> Any:
    return json if json is not None else {}
