"""What S3 checks of a presigned URL: its SigV4 signature over the request actually sent.

moto's S3 server does not check signatures (it takes any PUT to a presigned URL, whatever its
Content-Length), so the tests check the URLs here, the way S3 and MinIO do
(AWS, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)").
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

_UNRESERVED = "-_.~"


def signed_headers(url: str) -> list[str]:
    """The request headers the URL's signature covers."""
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"].split(";")


def signature_holds(url: str, *, method: str, headers: dict[str, str], secret_key: str) -> bool:
    """Whether S3 would accept the signature of ``url`` for a request with ``headers``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    params = dict(query)
    sent = {name.lower(): value.strip() for name, value in headers.items()}
    sent.setdefault("host", parts.netloc)
    covered = signed_headers(url)
    if any(name not in sent for name in covered):
        return False
    canonical_request = "\n".join(
        [
            method,
            parts.path,
            "&".join(
                f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}"
                for k, v in sorted(query)
                if k != "X-Amz-Signature"
            ),
            "".join(f"{name}:{sent[name]}\n" for name in covered),
            ";".join(covered),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret_key}".encode()
    for piece in scope.split("/"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, params["X-Amz-Signature"])
