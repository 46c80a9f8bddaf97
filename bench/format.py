"""Record format throughput and memory: `python -m bench format [--quick]`.

Contenders, all in one process, alternating rounds, medians, each reading from an in-memory
source and writing to a null sink. Rates are per second of this process's CPU time: every
contender is single-threaded, and on a shared machine wall time mostly measures the
neighbours.

- ours: `vault.format.encrypt_without_digest` / `decrypt` (default 256 KiB chunks); the public
  `encrypt`, which also hashes the ciphertext with BLAKE3 for the upload commit (decision
  0022), and the same with SHA-256 (what it did before); and `decrypt` after the BLAKE3 check
  of the blob that every download makes (vault/client/blobs.py);
- digest_throughput: BLAKE3 (the `blake3` package, one thread) and MD5 (the put's per-part
  checksum for S3's ETag, decision 0008) against SHA-256 over the same buffer;
- aes-gcm-raw: a bare loop of cryptography's AESGCM over 1 MiB chunks (encrypt_into and
  decrypt_into on reused buffers), the floor of this design;
- aws-encryption-sdk: its default committing suite (AES-256-GCM, HKDF-SHA-512, key commitment,
  ECDSA P-384 signature, 4 KiB frames) under a raw AES-256 wrapping key (the master key
  provider form: the material-providers library with the keyring form is not installed);
- tink-streaming: Tink's AES256_GCM_HKDF_1MB streaming AEAD.

Peak RSS is measured in a fresh child process encrypting and decrypting a 1 GiB stream
(256 MiB with --quick), against Tink doing the same; `floor_mib` is an idle child that has
imported the same modules.
"""

from __future__ import annotations

import functools
import hashlib
import io
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import vault.format as fmt
from bench._harness import Record, alternate, cpu_seconds, median, rate_record
from bench._harness import time_record as size_record

BENCH = "format"
MIB = 1 << 20
RAW_CHUNK = MIB
KEY = bytes(range(32))
ATTRS = fmt.RecordAttributes(
    record_id=b"\x01" * 16, version=1, child_ids=(b"\x02" * 16,), category="photo"
)


class _Pattern(io.RawIOBase):
    """`size` bytes of a repeating 1 MiB pattern, produced by copying (no giant buffer)."""

    _PATTERN = bytes(range(256)) * (MIB // 256)

    def __init__(self, size: int) -> None:
        self._left = size
        self._pattern = memoryview(self._PATTERN)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, MIB)
        buffer[:n] = self._pattern[:n]
        self._left -= n
        return n


class _Null(io.RawIOBase):
    """Discards what is written; keeps the count so a run can be checked."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        self.count += len(data)
        return len(data)


class _Keep(io.BytesIO):
    """A BytesIO whose content survives close (Tink closes its destination)."""

    kept = b""

    def close(self) -> None:
        if not self.closed:
            self.kept = self.getvalue()
        super().close()


def _metadata(size: int) -> fmt.Metadata:
    return fmt.Metadata(file_name="bench.bin", content_type="application/octet-stream", size=size)


# --- ours -----------------------------------------------------------------------------------


def ours_encrypt(size: int, dst: io.RawIOBase | io.BytesIO) -> None:
    fmt.encrypt_without_digest(
        record_key=KEY, attributes=ATTRS, metadata=_metadata(size), src=_Pattern(size), dst=dst
    )


def ours_encrypt_public(size: int, dst: io.RawIOBase) -> None:
    fmt.encrypt(
        record_key=KEY, attributes=ATTRS, metadata=_metadata(size), src=_Pattern(size), dst=dst
    )


def ours_encrypt_sha256(size: int, dst: io.RawIOBase) -> None:
    fmt.encrypt(
        record_key=KEY,
        attributes=ATTRS,
        metadata=_metadata(size),
        src=_Pattern(size),
        dst=dst,
        digest_alg="sha256",
    )


def ours_decrypt(blob: bytes, dst: io.RawIOBase) -> None:
    fmt.decrypt(record_key=KEY, attributes=ATTRS, src=io.BytesIO(blob), dst=dst)


def ours_decrypt_checked(committed: fmt.CiphertextDigest) -> Decrypt:
    """What a download does to the bytes it received: the check against the committed
    digest (here of the whole blob; a download hashes each piece as it arrives), then
    `decrypt`."""

    def decrypt(blob: bytes, dst: io.RawIOBase) -> None:
        if not fmt.digest_of(committed.alg, blob).matches(committed):
            raise RuntimeError("the blob is not the committed one")
        fmt.decrypt(record_key=KEY, attributes=ATTRS, src=io.BytesIO(blob), dst=dst)

    return decrypt


# --- aes-gcm-raw ------------------------------------------------------------------------------


def raw_encrypt(size: int, dst: io.RawIOBase | io.BytesIO) -> None:
    aead = AESGCM(KEY)
    src = _Pattern(size)
    plain = memoryview(bytearray(RAW_CHUNK))
    sealed = memoryview(bytearray(RAW_CHUNK + 16))
    counter = 0
    while n := src.readinto(plain):
        out = sealed[: n + 16]
        aead.encrypt_into(counter.to_bytes(12, "big"), plain[:n], None, out)
        dst.write(out)
        counter += 1


def raw_decrypt(blob: bytes, dst: io.RawIOBase) -> None:
    aead = AESGCM(KEY)
    src = io.BytesIO(blob)
    sealed = memoryview(bytearray(RAW_CHUNK + 16))
    plain = memoryview(bytearray(RAW_CHUNK))
    counter = 0
    while n := src.readinto(sealed):
        out = plain[: n - 16]
        aead.decrypt_into(counter.to_bytes(12, "big"), sealed[:n], None, out)
        dst.write(out)
        counter += 1


# --- aws-encryption-sdk ---------------------------------------------------------------------
# The baselines are imported lazily so the peak-memory child of "ours" loads only vault.format.


@functools.cache
def _aws() -> tuple[Any, Any]:
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import (
        CommitmentPolicy,
        EncryptionKeyType,
        WrappingAlgorithm,
    )
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider

    class StaticAesProvider(RawMasterKeyProvider):  # type: ignore[misc]
        provider_id = "carevault-bench"

        def _get_raw_key(self, key_id: bytes) -> WrappingKey:
            return WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=KEY,
                wrapping_key_type=EncryptionKeyType.SYMMETRIC,
            )

    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    provider = StaticAesProvider()
    provider.add_master_key(b"bench")
    return client, provider


def aws_encrypt(size: int, dst: io.RawIOBase | io.BytesIO) -> None:
    client, provider = _aws()
    # Iterating is the SDK's fast path: its read(n) is about four times slower here.
    with client.stream(mode="e", source=_Pattern(size), key_provider=provider) as stream:
        for chunk in stream:
            dst.write(chunk)


def aws_decrypt(blob: bytes, dst: io.RawIOBase) -> None:
    client, provider = _aws()
    with client.stream(mode="d", source=io.BytesIO(blob), key_provider=provider) as stream:
        for chunk in stream:
            dst.write(chunk)


# --- tink-streaming -------------------------------------------------------------------------


# Tink keys are random; the peak-memory children read one keyset from a file.
@functools.cache
def _tink(keyset_path: str = "") -> Any:
    import tink
    from tink import cleartext_keyset_handle, streaming_aead

    streaming_aead.register()
    if keyset_path:
        handle = cleartext_keyset_handle.read(
            tink.JsonKeysetReader(Path(keyset_path).read_text(encoding="utf-8"))
        )
    else:
        handle = tink.new_keyset_handle(
            streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
        )
    return handle.primitive(streaming_aead.StreamingAead)


def tink_encrypt(size: int, dst: io.RawIOBase | io.BytesIO) -> None:
    src = _Pattern(size)
    buffer = memoryview(bytearray(MIB))
    with _tink().new_encrypting_stream(dst, b"") as stream:
        while n := src.readinto(buffer):
            stream.write(buffer[:n])


def tink_decrypt(blob: bytes, dst: io.RawIOBase) -> None:
    with _tink().new_decrypting_stream(io.BytesIO(blob), b"") as stream:
        while chunk := stream.read(MIB):
            dst.write(chunk)


# --- measurement ----------------------------------------------------------------------------

Encrypt = Callable[[int, io.RawIOBase], None]
Decrypt = Callable[[bytes, io.RawIOBase], None]


def _rate(size: int, run: Callable[[_Null], None]) -> Callable[[], float]:
    def measure() -> float:
        sink = _Null()
        elapsed = cpu_seconds(lambda: run(sink))
        if sink.count < size:
            raise RuntimeError("a contender wrote less than the whole stream")
        return size / 1e6 / elapsed

    return measure


def _ciphertext(encrypt: Callable[[int, io.BytesIO], None], size: int) -> bytes:
    out = _Keep()
    encrypt(size, out)
    return out.kept if out.closed else out.getvalue()


def _peak_child(mode: str, contender: str, size: int, blob_path: str, keyset: str) -> None:
    """Runs in a fresh interpreter: stream `size` bytes through one contender, print VmHWM.

    VmHWM (this process's own high-water mark) is used rather than ru_maxrss, which Linux
    carries across exec from the parent's memory at fork and so would charge the child for
    the parent's buffers.
    """
    sink = _Null()
    if mode == "encrypt" and contender == "ours":
        ours_encrypt(size, sink)
    elif mode == "encrypt":
        with _tink(keyset).new_encrypting_stream(sink, b"") as stream:
            src, buffer = _Pattern(size), memoryview(bytearray(MIB))
            while n := src.readinto(buffer):
                stream.write(buffer[:n])
    elif mode == "decrypt":
        with open(blob_path, "rb") as src:
            if contender == "ours":
                fmt.decrypt(record_key=KEY, attributes=ATTRS, src=src, dst=sink)
            else:
                with _tink(keyset).new_decrypting_stream(src, b"") as stream:
                    while chunk := stream.read(MIB):
                        sink.write(chunk)
    status = Path("/proc/self/status").read_text(encoding="ascii")
    peak_kib = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")
    )
    print(peak_kib / 1024)


def _peak_mib(mode: str, contender: str, size: int, blob_path: str = "", keyset: str = "") -> float:
    args = [mode, contender, str(size), blob_path, keyset]
    done = subprocess.run(
        [sys.executable, "-m", "bench.format", *args], check=True, capture_output=True, text=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def _write_blob(path: Path, contender: str, size: int, keyset: str) -> None:
    with path.open("wb") as out:
        if contender == "ours":
            ours_encrypt(size, out)  # type: ignore[arg-type]
        else:
            with _tink(keyset).new_encrypting_stream(out, b"") as stream:
                src, buffer = _Pattern(size), memoryview(bytearray(MIB))
                while n := src.readinto(buffer):
                    stream.write(buffer[:n])


def run(quick: bool) -> Iterator[Record]:
    size = (64 if quick else 256) * MIB
    rounds = 3 if quick else 7
    contenders_enc: dict[str, Callable[[int, io.RawIOBase], None]] = {
        "ours": ours_encrypt,
        "ours+blake3": ours_encrypt_public,
        "ours+sha256": ours_encrypt_sha256,
        "aes-gcm-raw": raw_encrypt,
        "aws-encryption-sdk": aws_encrypt,
        "tink-streaming": tink_encrypt,
    }
    enc = alternate(
        {name: _rate(size, functools.partial(f, size)) for name, f in contenders_enc.items()},
        rounds,
    )
    blobs = {
        "ours": _ciphertext(ours_encrypt, size),
        "aes-gcm-raw": _ciphertext(raw_encrypt, size),
        "aws-encryption-sdk": _ciphertext(aws_encrypt, size),
        "tink-streaming": _ciphertext(tink_encrypt, size),
    }
    blobs["ours+blake3"] = blobs["ours"]
    decrypters: dict[str, Decrypt] = {
        "ours": ours_decrypt,
        "ours+blake3": ours_decrypt_checked(fmt.digest_of("blake3", blobs["ours"])),
        "aes-gcm-raw": raw_decrypt,
        "aws-encryption-sdk": aws_decrypt,
        "tink-streaming": tink_decrypt,
    }
    dec = alternate(
        {name: _rate(size, functools.partial(f, blobs[name])) for name, f in decrypters.items()},
        rounds,
    )
    del blobs
    common = {
        "timing": "process CPU time",
        "stream_mib": size // MIB,
        "rounds": rounds,
        "chunk_kib": fmt.DEFAULT_CHUNK_SIZE // 1024,
    }
    encrypters = {
        "ours": "encrypt_without_digest",
        "ours+blake3": "encrypt (public: +BLAKE3 of blob)",
        "ours+sha256": "encrypt (+SHA-256 of blob, before 0022)",
    }
    decrypting = {"ours": "decrypt", "ours+blake3": "decrypt (+BLAKE3 check of blob)"}
    for baseline in ("aes-gcm-raw", "aws-encryption-sdk", "tink-streaming"):
        for ours, contender in encrypters.items():
            yield rate_record(
                bench=BENCH,
                metric="encrypt_throughput",
                value=median(enc[ours]),
                unit="MB/s",
                baseline=baseline,
                baseline_value=median(enc[baseline]),
                contender=contender,
                **common,
            )
        for ours, contender in decrypting.items():
            yield rate_record(
                bench=BENCH,
                metric="decrypt_throughput",
                value=median(dec[ours]),
                unit="MB/s",
                baseline=baseline,
                baseline_value=median(dec[baseline]),
                contender=contender,
                **common,
            )
    yield from _digests(size, rounds)
    yield from _peak_rss(quick)


def _digests(size: int, rounds: int) -> Iterator[Record]:
    """Each digest over one buffer of the stream's size, per second of CPU."""
    buffer = _Pattern._PATTERN * (size // MIB)
    hashers: dict[str, Callable[[], object]] = {
        "sha256": lambda: hashlib.sha256(buffer).digest(),
        "blake3": lambda: blake3.blake3(buffer).digest(),
        "md5": lambda: hashlib.md5(buffer, usedforsecurity=False).digest(),
    }
    rates = alternate(
        {name: (lambda f=f: size / 1e6 / cpu_seconds(f)) for name, f in hashers.items()}, rounds
    )
    for name in ("blake3", "md5"):
        yield rate_record(
            bench=BENCH,
            metric="digest_throughput",
            value=median(rates[name]),
            unit="MB/s",
            baseline="sha256",
            baseline_value=median(rates["sha256"]),
            contender=name,
            timing="process CPU time",
            buffer_mib=size // MIB,
            rounds=rounds,
        )


def _peak_rss(quick: bool) -> Iterator[Record]:
    import tink
    from tink import cleartext_keyset_handle, streaming_aead

    size = (256 if quick else 1024) * MIB
    floor = _peak_mib("idle", "ours", 0)
    with tempfile.TemporaryDirectory(prefix="carevault-bench-") as tmp:
        keyset = Path(tmp) / "tink-keyset.json"
        streaming_aead.register()
        handle = tink.new_keyset_handle(
            streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
        )
        writer = tink.JsonKeysetWriter(out := io.StringIO())
        cleartext_keyset_handle.write(writer, handle)
        keyset.write_text(out.getvalue(), encoding="utf-8")
        for mode in ("encrypt", "decrypt"):
            peaks = {}
            for contender in ("ours", "tink"):
                path = Path(tmp) / f"{contender}.blob"
                if mode == "decrypt":
                    _write_blob(path, contender, size, str(keyset))
                peaks[contender] = _peak_mib(mode, contender, size, str(path), str(keyset))
                path.unlink(missing_ok=True)
            yield size_record(
                bench=BENCH,
                metric="peak_rss_mib",
                value=peaks["ours"],
                unit="MiB",
                baseline="tink-streaming",
                baseline_value=peaks["tink"],
                mode=mode,
                stream_mib=size // MIB,
                floor_mib=round(floor, 1),
                target_mib=100,
            )


if __name__ == "__main__":
    _peak_child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
