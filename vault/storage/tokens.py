"""Signed, expiring tokens for the local-directory store's blob URLs.

The key service serves ``GET``/``PUT /v1/blobs/{token}`` itself when blobs live in a local
directory; the token plays the part of an S3 presigned URL's signature. It names one object
(or one part of one multipart upload), one method, an expiry time and, for an upload, the
exact size of the body it takes (as a presigned S3 PUT signs its Content-Length):

    token   = base64url(claims) "." base64url(tag)        (no padding)
    claims  = compact JSON {"e": expires_at (unix s), "m": "GET"|"PUT", "n": name,
                            "p": part_number|null, "s": size|null, "u": upload_id|null,
                            "v": 2}
    tag     = HMAC-SHA256(token_key, "carevault blob token v2" || 0x00 || claims)

``s`` is the body's size in bytes for a PUT and null for a GET. Version 1 tokens, which
carried no size, are refused. The tag is checked before the claims are parsed, and every
failure — damaged encoding, wrong tag, wrong method, expired — is the same InvalidToken.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

from vault.storage.base import MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, part_length, plan_parts
from vault.storage.errors import InvalidToken, StorageError
from vault.storage.names import check_object_name, is_object_name

Method = Literal["GET", "PUT"]
TOKEN_VERSION = 2
MIN_KEY_SIZE = 32
MAX_TOKEN_LENGTH = 1024
_LABEL = b"carevault blob token v2\x00"


@dataclass(frozen=True)
class BlobGrant:
    """What a valid token allows: one method on one object (or one upload part) until then;
    an upload of exactly ``size`` bytes."""

    name: str
    method: Method
    expires_at: int
    upload_id: str | None = None
    part_number: int | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        check_object_name(self.name)
        if self.method not in ("GET", "PUT"):
            raise ValueError(f"unsupported method {self.method!r}")
        if (self.upload_id is None) != (self.part_number is None):
            raise ValueError("a part grant needs both an upload id and a part number")
        if self.upload_id is not None and not is_object_name(self.upload_id):
            raise ValueError("upload ids are 32 lowercase hex characters")
        if self.part_number is not None and not 1 <= self.part_number <= MAX_PARTS:
            raise ValueError(f"part numbers run from 1 to {MAX_PARTS}")
        if self.part_number is not None and self.method != "PUT":
            raise ValueError("parts are only ever uploaded")
        if self.method == "GET" and self.size is not None:
            raise ValueError("a download takes no size")
        limit = MAX_PART_SIZE if self.is_part else MAX_OBJECT_SIZE
        # type() rather than isinstance(): JSON's true must not pass for the size 1.
        if self.method == "PUT" and not (type(self.size) is int and 0 <= self.size <= limit):
            raise ValueError(f"an upload takes an exact size of 0 to {limit} bytes")

    @property
    def is_part(self) -> bool:
        return self.part_number is not None


def part_grants(
    name: str, *, upload_id: str, size: int, part_size: int, expires_at: int
) -> tuple[BlobGrant, ...]:
    """The PUT grants of a multipart upload of ``size`` bytes in parts of ``part_size``: one a
    part, each for exactly that part's length. A plan S3 would refuse is a ValueError."""
    return tuple(
        BlobGrant(
            name,
            "PUT",
            expires_at,
            upload_id=upload_id,
            part_number=number,
            size=part_length(size, part_size, number),
        )
        for number in range(1, plan_parts(size, part_size) + 1)
    )


class TokenSigner:
    """Makes and verifies blob tokens under one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_SIZE:
            raise ValueError(f"a blob token key must be at least {MIN_KEY_SIZE} bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "TokenSigner(<key hidden>)"

    def _tag(self, claims: bytes) -> bytes:
        return hmac.new(self._key, _LABEL + claims, hashlib.sha256).digest()

    def sign(self, grant: BlobGrant) -> str:
        claims = json.dumps(
            {
                "e": grant.expires_at,
                "m": grant.method,
                "n": grant.name,
                "p": grant.part_number,
                "s": grant.size,
                "u": grant.upload_id,
                "v": TOKEN_VERSION,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return f"{_encode(claims)}.{_encode(self._tag(claims))}"

    def verify(self, token: str, *, method: Method, now: float) -> BlobGrant:
        """The grant of a valid, unexpired ``method`` token; InvalidToken otherwise."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken()
        try:
            encoded_claims, encoded_tag = token.split(".")
            claims, tag = _decode(encoded_claims), _decode(encoded_tag)
        except ValueError as exc:
            raise InvalidToken() from exc
        if not hmac.compare_digest(tag, self._tag(claims)):
            raise InvalidToken()
        try:
            fields = json.loads(claims)
            if fields["v"] != TOKEN_VERSION or not isinstance(fields["e"], int):
                raise ValueError("unknown token version")
            grant = BlobGrant(
                name=fields["n"],
                method=fields["m"],
                expires_at=fields["e"],
                upload_id=fields["u"],
                part_number=fields["p"],
                size=fields["s"],
            )
        except (ValueError, KeyError, TypeError, StorageError) as exc:
            raise InvalidToken() from exc
        if grant.method != method or now >= grant.expires_at:
            raise InvalidToken()
        return grant


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("empty or non-ASCII token field")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("token field is not base64url") from exc
    # The decoder skips stray characters; only the one canonical spelling is accepted.
    if _encode(data) != text:
        raise ValueError("token field is not canonical base64url")
    return data
