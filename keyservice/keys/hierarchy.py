"""Child keys wrapped by the root key, record keys wrapped by child keys (docs/DESIGN.md, "Keys").

    child key context = "carevault/child-key/v1" || u16 len(child_id) || child_id (UTF-8)
                        || version (u32, big-endian)
    wrapped record key = nonce (12 random bytes)
                         || AES-256-GCM(child_key, nonce, record_key, aad = attributes.canonical())

A record of several children has one wrapped record key per child
(docs/decisions/0002-multi-child-wrapping.md).
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyservice.errors import KeyUnwrapError
from keyservice.keys.root import KEY_SIZE, RootKeyProvider
from keyservice.keys.transition import RootKeyTransition
from vault.format import RecordAttributes

CHILD_KEY_LABEL = b"carevault/child-key/v1"
MAX_KEY_VERSION = 2**32 - 1
NONCE_SIZE = 12
TAG_SIZE = 16


def _child_key_context(*, child_id: str, version: int) -> bytes:
    if not 1 <= version <= MAX_KEY_VERSION:
        raise ValueError(f"child key version must be between 1 and {MAX_KEY_VERSION}")
    encoded = child_id.encode()
    if not encoded or len(encoded) > 0xFFFF:
        raise ValueError("child id must be between 1 and 65535 bytes of UTF-8")
    return CHILD_KEY_LABEL + struct.pack(">H", len(encoded)) + encoded + struct.pack(">I", version)


def parse_child_key_context(context: bytes) -> tuple[str, int] | None:
    """The (child id, version) a child key context names, or None if ``context`` is not one.

    Providers that show the context to someone else (a KMS logs it) use this to show it
    legibly; the bytes stay what binds the wrap.
    """
    header = len(CHILD_KEY_LABEL) + 2
    if not context.startswith(CHILD_KEY_LABEL) or len(context) < header + 4:
        return None
    (size,) = struct.unpack_from(">H", context, len(CHILD_KEY_LABEL))
    if len(context) != header + size + 4:
        return None
    try:
        child_id = context[header : header + size].decode()
    except UnicodeDecodeError:
        return None
    (version,) = struct.unpack_from(">I", context, header + size)
    if not child_id or version == 0:
        return None
    return child_id, version


def _check_key(name: str, key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"{name} must be {KEY_SIZE} bytes")


def wrap_child_key(
    root: RootKeyProvider, *, child_id: str, version: int, child_key: bytes
) -> bytes:
    """Wrap version ``version`` of ``child_id``'s key under the current root key."""
    _check_key("child key", child_key)
    return root.wrap(child_key, context=_child_key_context(child_id=child_id, version=version))


def generate_child_key(
    root: RootKeyProvider, *, child_id: str, version: int
) -> tuple[bytes, bytes]:
    """A new key for version ``version`` of ``child_id`` and its wrap under the current root
    key: one call to the provider."""
    child_key, wrapped = root.generate(
        context=_child_key_context(child_id=child_id, version=version)
    )
    if len(child_key) != KEY_SIZE:
        raise KeyUnwrapError()
    return child_key, wrapped


def unwrap_child_key(
    root: RootKeyProvider, *, child_id: str, version: int, wrapped: bytes
) -> bytes:
    """The child key wrapped for exactly this child and version; anything else is a
    KeyUnwrapError."""
    child_key = root.unwrap(wrapped, context=_child_key_context(child_id=child_id, version=version))
    if len(child_key) != KEY_SIZE:
        raise KeyUnwrapError()
    return child_key


def rewrap_child_key(
    root: RootKeyProvider, *, child_id: str, version: int, wrapped: bytes
) -> bytes:
    """The same child key version wrapped under the root key's current version, in one call
    to the provider (a KMS never lets the child key out)."""
    return root.rewrap(wrapped, context=_child_key_context(child_id=child_id, version=version))


def move_child_key(
    root: RootKeyTransition, *, child_id: str, version: int, wrapped: bytes
) -> bytes:
    """A child key version wrapped by the previous provider, wrapped by the current one: one
    call to each (keys/transition.py)."""
    return root.move(wrapped, context=_child_key_context(child_id=child_id, version=version))


def wrap_record_key(*, child_key: bytes, attributes: RecordAttributes, record_key: bytes) -> bytes:
    """Wrap a record version's key under one of its children's keys, bound to its attributes."""
    _check_key("child key", child_key)
    _check_key("record key", record_key)
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(child_key).encrypt(nonce, record_key, attributes.canonical())


class RecordKeyRewrapper:
    """Moves record key wraps from a child's older key versions to ``new_version``, in bulk:
    each version's cipher is built once, each record's attributes encoded once, and the
    record key never leaves the call."""

    def __init__(self, keys: dict[int, bytes], *, new_version: int) -> None:
        for key in keys.values():
            _check_key("child key", key)
        self._ciphers = {version: AESGCM(key) for version, key in keys.items()}
        self._new = self._ciphers[new_version]

    def __call__(self, *, old_version: int, attributes: RecordAttributes, wrapped: bytes) -> bytes:
        """``wrapped`` (under ``old_version``) wrapped again under the new version, bound to
        the same attributes; a KeyUnwrapError if it does not open."""
        aad = attributes.canonical()
        cipher = self._ciphers.get(old_version)
        if cipher is None or len(wrapped) != NONCE_SIZE + KEY_SIZE + TAG_SIZE:
            raise KeyUnwrapError()
        try:
            record_key = cipher.decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], aad)
        except (InvalidTag, ValueError) as exc:
            raise KeyUnwrapError() from exc
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._new.encrypt(nonce, record_key, aad)


def unwrap_record_key(*, child_key: bytes, attributes: RecordAttributes, wrapped: bytes) -> bytes:
    """The record key, if ``wrapped`` was made with this child key for exactly these attributes.

    Any other key, attributes or bytes is a KeyUnwrapError.
    """
    return RecordKeyUnwrapper(child_key).unwrap(aad=attributes.canonical(), wrapped=wrapped)


class RecordKeyUnwrapper:
    """``unwrap_record_key`` for many records under one child key, its cipher made once (a
    key release opens up to 1,000 record keys, most under the same few child keys), with
    the records' canonical attributes (``aad``) given as bytes."""

    def __init__(self, child_key: bytes) -> None:
        try:
            self._cipher: AESGCM | None = AESGCM(child_key)
        except ValueError:
            self._cipher = None

    def unwrap(self, *, aad: bytes, wrapped: bytes) -> bytes:
        """The record key; any other key, attributes or bytes is a KeyUnwrapError."""
        if self._cipher is None or len(wrapped) != NONCE_SIZE + KEY_SIZE + TAG_SIZE:
            raise KeyUnwrapError()
        try:
            return self._cipher.decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], aad)
        except (InvalidTag, ValueError) as exc:
            raise KeyUnwrapError() from exc
