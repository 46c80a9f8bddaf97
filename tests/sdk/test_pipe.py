"""The bounded pipe between a producing thread and a reader (vault/client/pipe.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import BinaryIO

import pytest

from vault.client.pipe import PipeProducer


def _writes(pieces: list[bytes], result: str = "done") -> Callable[[BinaryIO], str]:
    def produce(sink: BinaryIO) -> str:
        for piece in pieces:
            sink.write(piece)
        return result

    return produce


def test_iter_exactly_splits_at_any_boundary() -> None:
    pipe = PipeProducer(_writes([b"abc", b"defgh", b"", b"ij"]))
    assert b"".join(pipe.iter_exactly(4)) == b"abcd"
    assert b"".join(pipe.iter_exactly(5)) == b"efghi"
    assert b"".join(pipe.iter_exactly(1)) == b"j"
    assert pipe.result() == "done"


def test_short_output_yields_less_and_result_needs_everything_read() -> None:
    pipe = PipeProducer(_writes([b"abc"]))
    assert b"".join(pipe.iter_exactly(10)) == b"abc"
    assert pipe.at_end()
    unread = PipeProducer(_writes([b"abc"]))
    assert b"".join(unread.iter_exactly(2)) == b"ab"
    with pytest.raises(RuntimeError):
        unread.result()
    unread.close()


def test_read_into_copies_in_order() -> None:
    pipe = PipeProducer(_writes([b"hello ", b"world"]))
    buffer = bytearray(4)
    out = b""
    while count := pipe.read_into(memoryview(buffer)):
        out += bytes(buffer[:count])
    assert out == b"hello world"


def test_producer_error_reaches_the_reader() -> None:
    def produce(sink: BinaryIO) -> None:
        sink.write(b"partial")
        raise ValueError("source failed")

    pipe: PipeProducer[None] = PipeProducer(produce)
    with pytest.raises(ValueError, match="source failed"):
        b"".join(pipe.iter_exactly(100))


def test_producer_is_held_back_and_close_stops_it() -> None:
    written = 0
    stopped = threading.Event()

    def produce(sink: BinaryIO) -> None:
        nonlocal written
        try:
            while True:
                sink.write(b"x" * 1024)
                written += 1
        except BrokenPipeError:
            stopped.set()
            raise

    pipe: PipeProducer[None] = PipeProducer(produce, depth=4)
    assert b"".join(pipe.iter_exactly(1024)) == b"x" * 1024
    pipe.close()
    assert stopped.is_set()
    assert written <= 4 + 2, "the producer may run only a queue's depth ahead of the reader"
