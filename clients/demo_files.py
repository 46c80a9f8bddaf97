"""The demo's sample files: a short note and a photo-sized picture made on the spot."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

PHOTO_WIDTH = 1200
PHOTO_HEIGHT = 800


def write_note(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_photo(path: Path, *, seed: int = 7) -> Path:
    """A valid ~2 MB PNG: a colour gradient with per-pixel grain, stored uncompressed-ish.

    The grain comes from a small linear congruential sequence so the picture is the same on
    every run and does not compress away (real photos do not either).
    """
    rows = []
    state = seed
    for y in range(PHOTO_HEIGHT):
        row = bytearray(b"\x00")  # filter type 0 for every scanline
        for x in range(PHOTO_WIDTH):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            grain = state >> 27
            row += bytes(
                (
                    (x * 255 // PHOTO_WIDTH + grain) & 0xFF,
                    (y * 255 // PHOTO_HEIGHT + grain) & 0xFF,
                    (160 + grain * 3) & 0xFF,
                )
            )
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", PHOTO_WIDTH, PHOTO_HEIGHT, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 1))
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path
