"""Fuzz target for the Content-Digest parser: `python -m tests.fuzz.fuzz_digest <flags>`.

The service checks a signed request's body against its ``Content-Digest`` (RFC 9530) inside
``keyservice.auth.verifier.verify_request``. The digest field is covered by the signature,
so a random field would only ever fail the signature; here the input's field (raw bytes, or
an edit of the true one) is signed with the device's key through the signature library with
``use_existing_digest``, exactly as a client that sent that field would, and then verified
with the body the input chooses. The only allowed failures are the library's refusal to sign
a malformed field and ``AuthenticationError``; a body that verifies must match the field's
SHA-256 (its value, padded or not).
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["keyservice.auth", "http_message_signatures", "http_sfv"]):
    import httpx
    from http_message_signatures import HTTPMessageSigner, algorithms
    from http_message_signatures.exceptions import HTTPMessageSignaturesException

    from keyservice.errors import AuthenticationError
    from tests.fuzz.common import AUDIENCE, BODY, DEVICE_ID, KEY, NOW, URL, header_list, verify
    from vault.signing import (
        AUDIENCE_HEADER,
        COVERED_COMPONENTS,
        SIGNATURE_LABEL,
        SIGNATURE_TAG,
        _OneKey,
    )

SIGNER = HTTPMessageSigner(
    signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(DEVICE_ID, KEY)
)
TRUE_FIELD = "sha-256=:" + base64.b64encode(hashlib.sha256(BODY).digest()).decode() + ":"


def _field(fdp: atheris.FuzzedDataProvider) -> str:
    if fdp.ConsumeBool():
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)).decode("latin-1")
    value = bytearray(TRUE_FIELD.encode("latin-1"))
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        at = fdp.ConsumeIntInRange(0, len(value))
        op = fdp.ConsumeIntInRange(0, 2)
        if op == 0 and at < len(value):
            value[at] = fdp.ConsumeIntInRange(0, 255)
        elif op == 1:
            value[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 48))
        else:
            del value[at : at + fdp.ConsumeIntInRange(1, 16)]
    return bytes(value).decode("latin-1")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    field = _field(fdp)
    body = BODY if fdp.ConsumeBool() else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    request = httpx.Request("POST", URL, content=body)
    request.headers[AUDIENCE_HEADER] = AUDIENCE
    try:
        request.headers["Content-Digest"] = field
    except (UnicodeEncodeError, ValueError):
        return  # not a header value an HTTP client could send
    try:
        SIGNER.sign(
            request,
            key_id=DEVICE_ID,
            created=datetime.fromtimestamp(NOW, tz=UTC),
            nonce="0" * 32,
            label=SIGNATURE_LABEL,
            tag=SIGNATURE_TAG,
            covered_component_ids=COVERED_COMPONENTS,
            use_existing_digest=True,
        )
    except HTTPMessageSignaturesException:
        signed = False  # the field is malformed; the service must refuse it all the same
    else:
        signed = True
    try:
        verify(header_list(request), body)
    except AuthenticationError:
        return
    if not signed:
        raise AssertionError(f"an unsigned request verified: {field!r}")
    if hashlib.sha256(body).digest() not in _sha256_values(field):
        raise AssertionError(f"body {body!r} verified against digest field {field!r}")


def _sha256_values(field: str) -> list[bytes]:
    """The sha-256 values a field names (RFC 8941 lets a parser accept a byte sequence
    without its "=" padding, and the library does)."""
    values = []
    for text in re.findall(r"sha-256\s*=\s*:([A-Za-z0-9+/=]*):", field):
        try:
            values.append(base64.b64decode(text + "=" * (-len(text) % 4)))
        except ValueError:
            continue
    return values


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
