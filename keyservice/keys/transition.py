"""A root key moving between providers (``carevault-keyservice root-key migrate``).

While ``CAREVAULT_ROOT_KEY_PREVIOUS`` is set, new wraps go to the current provider
(``CAREVAULT_ROOT_KEY``) and wraps made by either still open: an instance restarted with both
settings serves every child whichever provider wrapped its key. A rolling move first gives
every instance both, still wrapping with the old one, then swaps the two. The migrate job
moves the rest (``move``: one unwrap by the previous provider, one wrap by the current); once
no row needs the previous provider, the setting is dropped (docs/decisions/0017).
"""

from __future__ import annotations

from keyservice.errors import KeyUnwrapError
from keyservice.keys.root import RootKeyProvider


class RootKeyTransition:
    """``current`` wraps; ``previous`` still unwraps what it wrapped."""

    def __init__(self, current: RootKeyProvider, previous: RootKeyProvider) -> None:
        self.current = current
        self.previous = previous

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        return self.current.wrap(plaintext, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        # The local file first, whichever slot it is in: it refuses another provider's wrap in
        # microseconds, where a KMS or a token refusing a file's wrap costs a round trip.
        first, second = (
            (self.current, self.previous)
            if self.current.identity() == "file"
            else (self.previous, self.current)
        )
        try:
            return first.unwrap(wrapped, context=context)
        except KeyUnwrapError:
            return second.unwrap(wrapped, context=context)

    def rewrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        try:
            return self.move(wrapped, context=context)
        except KeyUnwrapError:
            return self.current.rewrap(wrapped, context=context)

    def move(self, wrapped: bytes, *, context: bytes) -> bytes:
        """A wrap of the previous provider wrapped by the current one."""
        return self.current.wrap(self.previous.unwrap(wrapped, context=context), context=context)

    def generate(self, *, context: bytes) -> tuple[bytes, bytes]:
        return self.current.generate(context=context)

    def identity(self) -> str:
        return self.current.identity()

    def current_version(self) -> int:
        return self.current.current_version()

    def rotate(self) -> int:
        return self.current.rotate()
