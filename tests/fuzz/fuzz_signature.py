"""Fuzz target for the Signature-Input and Signature header parsing of a signed request:
`python -m tests.fuzz.fuzz_signature <libFuzzer flags>`.

The service verifies every signed request with ``keyservice.auth.verifier.verify_request`` on
the raw header fields as received (latin-1). Each input either replaces the two headers with
bytes of its own or edits the valid ones of a request signed by the SDK's signer (flip,
insert, delete, truncate, leave out, repeat). The only allowed failure is
``AuthenticationError``; a request that verifies must be the signed one (same device, nonce
and time): anything else, or any other exception, is a crash.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["keyservice.auth", "http_message_signatures", "http_sfv"]):
    from keyservice.errors import AuthenticationError
    from tests.fuzz.common import BODY, header_list, signed_request, verify

VALID = signed_request()
HEADERS = header_list(VALID)
SIGNED = {name.lower(): value for name, value in HEADERS}
NAMES = ("signature-input", "signature")
EXPECTED = verify(HEADERS, BODY)


def _edit(fdp: atheris.FuzzedDataProvider, text: str) -> str:
    value = bytearray(text.encode("latin-1"))
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        op = fdp.ConsumeIntInRange(0, 3)
        at = fdp.ConsumeIntInRange(0, max(len(value) - 1, 0))
        if op == 0 and value:
            value[at] = fdp.ConsumeIntInRange(0, 255)
        elif op == 1:
            value[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 24))
        elif op == 2:
            del value[at : at + fdp.ConsumeIntInRange(1, 32)]
        else:
            del value[at:]
    return bytes(value).decode("latin-1")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    fields = {name: SIGNED[name] for name in NAMES}
    if mode == 0:
        # Both headers from the input.
        for name in NAMES:
            fields[name] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)).decode("latin-1")
    else:
        for name in NAMES if mode == 3 else (NAMES[mode - 1],):
            fields[name] = _edit(fdp, fields[name])
    headers = [(n, v) for n, v in HEADERS if n.lower() not in NAMES]
    for name in NAMES:
        if fdp.ConsumeBool():
            continue  # a header left out
        headers.append((name, fields[name]))
        if fdp.ConsumeIntInRange(0, 7) == 0:
            headers.append((name, fields[name]))  # the same field line twice
    try:
        verified = verify(headers, BODY)
    except AuthenticationError:
        return
    # An edit that still verifies may only be one that serialises to the same signature
    # (Structured Field whitespace, say): Ed25519 is not malleable and the parameters are
    # in the signature base, so it must name the same device, nonce and time.
    if verified != EXPECTED:
        raise AssertionError(f"an edited signature verified as {verified!r}: {headers!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
