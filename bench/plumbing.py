"""Proves the runner's plumbing: SHA-256 against BLAKE2b over the same buffer (alternating
rounds), and the peak memory of a child hashing a file in chunks against one reading it whole.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bench._harness import (
    Record,
    alternate,
    median,
    peak_rss_of_child,
    rate_record,
    seconds,
    time_record,
)

BENCH = "plumbing"
_MIB = 1024 * 1024


def _throughput(algorithm: str, buffer: bytes, repeats: int) -> Callable[[], float]:
    def measure() -> float:
        def work() -> None:
            for _ in range(repeats):
                hashlib.new(algorithm, buffer).digest()

        return repeats * len(buffer) / _MIB / seconds(work)

    return measure


def run(quick: bool) -> Iterator[Record]:
    size_mib, repeats, rounds = (4, 4, 5) if quick else (16, 8, 15)
    buffer = os.urandom(size_mib * _MIB)
    results = alternate(
        {
            "sha256": _throughput("sha256", buffer, repeats),
            "blake2b": _throughput("blake2b", buffer, repeats),
        },
        rounds,
    )
    yield rate_record(
        bench=BENCH,
        metric="sha256_throughput",
        value=median(results["sha256"]),
        unit="MiB/s",
        baseline="blake2b",
        baseline_value=median(results["blake2b"]),
        buffer_mib=size_mib,
        rounds=rounds,
    )
    file_mib = 16 if quick else 64
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data"
        with path.open("wb") as out:
            for _ in range(file_mib):
                out.write(os.urandom(_MIB))
        streaming = peak_rss_of_child(functools.partial(hash_streaming, path))
        whole = peak_rss_of_child(functools.partial(hash_whole, path))
    yield time_record(
        bench=BENCH,
        metric="hash_file_peak_rss",
        value=streaming,
        unit="MiB",
        baseline="read_whole_file",
        baseline_value=whole,
        file_mib=file_mib,
    )


def hash_streaming(path: Path) -> bytes:
    """SHA-256 of a file read in 64 KiB chunks: memory does not grow with the file."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(64 * 1024):
            digest.update(chunk)
    return digest.digest()


def hash_whole(path: Path) -> bytes:
    """SHA-256 of a file read into memory at once: the baseline the streaming read beats."""
    return hashlib.sha256(path.read_bytes()).digest()
