"""A bounded pipe from a writer thread to a reader, so that two kinds of work overlap.

On upload the record format's ``encrypt`` pushes ciphertext into a writable stream while the
HTTP upload pulls its body from an iterator; on download a thread pulls the response off the
network while ``decrypt`` works on what already arrived. A small bounded queue joins the two,
so at most ``depth`` pieces are in memory however large the record is. A small record needs
no pipe (``SMALL_CIPHERTEXT_SIZE`` in vault/client/blobs.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, Generic, TypeVar, cast

T = TypeVar("T")

_DEPTH = 16
_DONE = object()


class _QueueWriter:
    """The write end handed to the producer; blocks while the reader is behind."""

    def __init__(self, q: queue.Queue[object], cancelled: threading.Event) -> None:
        self._queue = q
        self._cancelled = cancelled

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._cancelled.is_set():
            raise BrokenPipeError("the reader went away")
        chunk = bytes(data)
        while True:
            try:
                self._queue.put(chunk, timeout=0.1)
                return len(chunk)
            except queue.Full:
                if self._cancelled.is_set():
                    raise BrokenPipeError("the reader went away") from None

    def flush(self) -> None:
        return None

    def writable(self) -> bool:
        return True


class PipeProducer(Generic[T]):
    """Runs ``produce(writer)`` in a thread; ``read``/``iter_exactly`` take its output in order.

    ``result()`` returns what ``produce`` returned, or raises what it raised, once the
    output has been read to the end. ``close()`` stops the producer early.
    """

    def __init__(self, produce: Callable[[BinaryIO], T], *, depth: int = _DEPTH) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._cancelled = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        self._pending = b""
        self._unread = memoryview(b"")
        self._finished = False
        writer = cast(BinaryIO, _QueueWriter(self._queue, self._cancelled))
        self._thread = threading.Thread(target=self._run, args=(produce, writer), daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[BinaryIO], T], writer: BinaryIO) -> None:
        try:
            self._result = produce(writer)
        except BaseException as exc:  # handed to the reading thread, which re-raises it
            self._error = exc
        finally:
            while not self._cancelled.is_set():
                try:
                    self._queue.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _next_chunk(self) -> bytes | None:
        if self._finished:
            return None
        item = self._queue.get()
        if item is _DONE:
            self._finished = True
            if self._error is not None:
                raise self._error
            return None
        return cast(bytes, item)

    def iter_exactly(self, size: int) -> Iterator[bytes]:
        """Yield the next ``size`` bytes of output in pieces; fewer only if the output ends."""
        remaining = size
        while remaining > 0:
            if not self._pending:
                chunk = self._next_chunk()
                if chunk is None:
                    return
                self._pending = chunk
            piece, self._pending = self._pending[:remaining], self._pending[remaining:]
            remaining -= len(piece)
            yield piece

    def read_into(self, buffer: memoryview) -> int:
        """Copy the next output into ``buffer``; 0 only once the output has ended."""
        if not self._unread:
            chunk = self._next_chunk()
            if chunk is None:
                return 0
            # A view, so taking the chunk in several pieces copies each byte only once.
            self._unread = memoryview(chunk)
        count = min(len(buffer), len(self._unread))
        buffer[:count] = self._unread[:count]
        self._unread = self._unread[count:]
        return count

    def at_end(self) -> bool:
        """Whether the producer has finished and every byte has been read."""
        if self._pending or self._unread:
            return False
        chunk = self._next_chunk()
        if chunk is None:
            return True
        self._pending = chunk
        return False

    def result(self) -> T:
        """The producer's return value, after its output was read to the end."""
        if not self.at_end():
            raise RuntimeError("the producer wrote more than was read")
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._result)

    def close(self) -> None:
        """Stop the producer (it sees a broken pipe) and wait for its thread."""
        self._cancelled.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self._thread.join()
