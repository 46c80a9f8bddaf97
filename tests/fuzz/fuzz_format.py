"""Fuzz target for the record decoder: `python -m tests.fuzz.fuzz_format <libFuzzer flags>`.

Each input either is a blob on its own or, more usefully, edits a valid blob (flip, insert,
delete or truncate at positions the input chooses), so the fuzzer gets past the magic and
the MAC into every parser branch. Any exception other than the format's own errors, or a
forged blob that decrypts, is a crash.
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports(include=["vault"]):
    import vault.format as fmt
    from tests.format.blobs import encrypted_blob
    from vault.format import Metadata, RecordAttributes, VaultFormatError

KEY = bytes(range(32))
ATTRS = RecordAttributes(
    record_id=b"\x42" * 16, version=2, child_ids=(b"\x01" * 16, b"\x02" * 16), category="photo"
)
PLAINTEXT = bytes(range(256)) * 40
META = Metadata(file_name="photo.jpg", content_type="image/jpeg", size=len(PLAINTEXT))
VALID = encrypted_blob(
    PLAINTEXT,
    record_key=KEY,
    attributes=ATTRS,
    chunk_size=4096,
    file_name=META.file_name,
    content_type=META.content_type,
)
SEALED = fmt.seal_metadata(record_key=KEY, attributes=ATTRS, metadata=META)


def _mutate(fdp: atheris.FuzzedDataProvider, base: bytes) -> bytes:
    blob = bytearray(base)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        op = fdp.ConsumeIntInRange(0, 3)
        at = fdp.ConsumeIntInRange(0, max(len(blob) - 1, 0))
        if op == 0 and blob:
            blob[at] ^= fdp.ConsumeIntInRange(1, 255)
        elif op == 1:
            blob[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 32))
        elif op == 2:
            del blob[at : at + fdp.ConsumeIntInRange(1, 64)]
        else:
            del blob[at:]
    return bytes(blob)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        blob = fdp.ConsumeBytes(len(data))
    elif mode == 3:
        sealed = _mutate(fdp, SEALED)
        try:
            fmt.open_metadata(record_key=KEY, attributes=ATTRS, sealed=sealed)
        except VaultFormatError:
            return
        if sealed != SEALED:
            raise AssertionError("forged sealed metadata opened")
        return
    else:
        blob = _mutate(fdp, VALID)
    out = io.BytesIO()
    start = fdp.ConsumeIntInRange(0, len(PLAINTEXT) - 1)
    # A range read only authenticates the chunk it needs, so it may succeed on a blob edited
    # elsewhere; what it returns must still be the true bytes.
    expected = PLAINTEXT[start : start + 1] if mode == 2 else PLAINTEXT
    try:
        if mode == 2:
            fmt.decrypt_range(
                record_key=KEY,
                attributes=ATTRS,
                read_at=lambda offset, n: blob[offset : offset + n],
                start=start,
                length=1,
                dst=out,
            )
        else:
            fmt.decrypt(record_key=KEY, attributes=ATTRS, src=io.BytesIO(blob), dst=out)
    except VaultFormatError:
        if not expected.startswith(out.getvalue()):
            raise AssertionError("unauthenticated plaintext was released") from None
        return
    if mode != 2 and blob != VALID:
        raise AssertionError("a forged blob decrypted")
    if out.getvalue() != expected:
        raise AssertionError("decrypted to different plaintext")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
