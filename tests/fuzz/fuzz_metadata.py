"""Fuzz target for the encrypted-metadata decoder: `python -m tests.fuzz.fuzz_metadata <flags>`.

A record's sealed metadata comes from another device through the key service; the recipient's
SDK opens it with ``vault.format.open_metadata`` (and the record header carries the same
encoding). Random bytes never pass the AES-GCM tag, so the decoder behind it is only reached
when the input is the *plaintext*: in mode 0 the input is sealed under the record key first
(as a hostile but enrolled writer could), in mode 1 a valid sealed blob is edited, in mode 2
``Metadata.decode`` gets the bytes directly. The only allowed failure is the format's own
error; what decodes must encode back to the same bytes, and an edited seal must never open.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["vault.format"]):
    import vault.format as fmt
    from vault.format import Metadata, RecordAttributes, VaultFormatError
    from vault.format.metadata import _seal_encoded

KEY = bytes(range(32))
ATTRS = RecordAttributes(
    record_id=b"\x42" * 16, version=1, child_ids=(b"\x01" * 16,), category="observation"
)
SALT = b"\x07" * 32
SEALED = fmt.seal_metadata(
    record_key=KEY,
    attributes=ATTRS,
    metadata=Metadata(file_name="note.txt", content_type="text/plain", size=12),
)


def _check_roundtrip(encoded: bytes, metadata: Metadata) -> None:
    if metadata.encode() != encoded:
        raise AssertionError(f"{encoded!r} decoded to {metadata!r}, which encodes differently")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 1:
        sealed = bytearray(SEALED)
        for _ in range(fdp.ConsumeIntInRange(1, 3)):
            at = fdp.ConsumeIntInRange(0, len(sealed))
            op = fdp.ConsumeIntInRange(0, 2)
            if op == 0 and at < len(sealed):
                sealed[at] ^= fdp.ConsumeIntInRange(1, 255)
            elif op == 1:
                sealed[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))
            else:
                del sealed[at:]
        try:
            fmt.open_metadata(record_key=KEY, attributes=ATTRS, sealed=bytes(sealed))
        except VaultFormatError:
            return
        if bytes(sealed) != SEALED:
            raise AssertionError("edited sealed metadata opened")
        return
    encoded = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if mode == 0:
            sealed_bytes = _seal_encoded(
                record_key=KEY, attributes=ATTRS, encoded=encoded, salt=SALT
            )
            metadata = fmt.open_metadata(record_key=KEY, attributes=ATTRS, sealed=sealed_bytes)
        else:
            metadata = Metadata.decode(encoded)
    except VaultFormatError:
        return
    _check_roundtrip(encoded, metadata)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
