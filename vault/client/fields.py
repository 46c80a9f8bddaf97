"""Reading one JSON object of a key service answer field by field, each field checked for its
type: the reader ``vault.client.wire``'s parsers are written with."""

from __future__ import annotations

import binascii
from datetime import datetime
from typing import TypeVar

from vault.client.identity import b64decode

V = TypeVar("V")


class MalformedAnswer(ValueError):
    """An answer of the key service that is not what docs/API.md promises."""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Fields:
    """One JSON object of an answer, read field by field, each checked for its type.

    A field that is absent and one that is ``null`` are the same to these readers.
    """

    __slots__ = ("_body", "_what")

    def __init__(self, body: object, what: str) -> None:
        if not isinstance(body, dict):
            raise MalformedAnswer(f"{what} is not a JSON object")
        self._body: dict[str, object] = body
        self._what = what

    def _missing(self, name: str, kind: str) -> MalformedAnswer:
        return MalformedAnswer(f"{self._what}: no {kind} in {name!r}")

    def _required(self, value: V | None, name: str, kind: str) -> V:
        if value is None:
            raise self._missing(name, kind)
        return value

    def _exactly(self, name: str, kind: type[V], said: str) -> V | None:
        # Exactly the type: JSON's true is no integer here.
        value = self._body.get(name)
        if value is None or (isinstance(value, kind) and type(value) is kind):
            return value
        raise self._missing(name, said)

    def opt_text(self, name: str) -> str | None:
        return self._exactly(name, str, "text")

    def text(self, name: str) -> str:
        return self._required(self.opt_text(name), name, "text")

    def opt_integer(self, name: str) -> int | None:
        return self._exactly(name, int, "integer")

    def integer(self, name: str) -> int:
        return self._required(self.opt_integer(name), name, "integer")

    def flag(self, name: str, *, default: bool) -> bool:
        value = self._body.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        raise self._missing(name, "true or false")

    def opt_time(self, name: str) -> datetime | None:
        text = self.opt_text(name)
        if text is None:
            return None
        try:
            moment = parse_time(text)
        except ValueError as exc:
            raise self._missing(name, "time") from exc
        if moment.tzinfo is None:
            raise self._missing(name, "time with its zone")
        return moment

    def time(self, name: str) -> datetime:
        return self._required(self.opt_time(name), name, "time")

    def opt_data(self, name: str) -> bytes | None:
        text = self.opt_text(name)
        if text is None:
            return None
        try:
            return b64decode(text)
        except (binascii.Error, ValueError) as exc:
            raise self._missing(name, "base64url") from exc

    def data(self, name: str) -> bytes:
        return self._required(self.opt_data(name), name, "base64url")

    def texts(self, name: str, *, optional: bool = False) -> tuple[str, ...]:
        value = self._body.get(name)
        if value is None and optional:
            return ()
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise self._missing(name, "list of texts")

    def mapping(self, name: str) -> dict[str, object]:
        value = self._body.get(name)
        if value is None:
            return {}
        if isinstance(value, dict):
            return dict(value)
        raise self._missing(name, "object")

    def items(self, name: str, what: str) -> list[Fields]:
        """A list of objects, each read as ``what``."""
        value = self._body.get(name)
        if not isinstance(value, list):
            raise self._missing(name, "list")
        return [Fields(item, what) for item in value]

    def obj(self, name: str) -> Fields:
        return Fields(self._body.get(name), f"{self._what}'s {name}")

    def whole(self) -> dict[str, object]:
        return dict(self._body)
