"""Child keys under the root key, record keys under child keys bound to record attributes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from keyservice.errors import KeyUnwrapError
from keyservice.keys import (
    FakeRootKeyProvider,
    LocalFileRootKeyProvider,
    generate_key,
    unwrap_child_key,
    unwrap_record_key,
    wrap_child_key,
    wrap_record_key,
)
from keyservice.keys.hierarchy import _child_key_context
from vault.format import Category, RecordAttributes

CHILD_A = "a1" * 16
CHILD_B = "b2" * 16

ATTRIBUTES = RecordAttributes(
    record_id=bytes.fromhex("0c" * 16),
    version=3,
    child_ids=(bytes.fromhex(CHILD_A), bytes.fromhex(CHILD_B)),
    category=Category.OBSERVATION,
)


def test_generate_key_is_256_bit_and_fresh() -> None:
    keys = {generate_key() for _ in range(64)}
    assert len(keys) == 64
    assert {len(k) for k in keys} == {32}


def test_child_key_round_trip() -> None:
    root = FakeRootKeyProvider()
    child_key = generate_key()
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=child_key)
    assert child_key not in wrapped
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=wrapped) == child_key


def test_child_key_round_trip_with_the_local_file_root(tmp_path: Path) -> None:
    child_key = generate_key()
    wrapped = wrap_child_key(
        LocalFileRootKeyProvider(tmp_path / "root.key"),
        child_id=CHILD_A,
        version=2,
        child_key=child_key,
    )
    restarted = LocalFileRootKeyProvider(tmp_path / "root.key")
    assert unwrap_child_key(restarted, child_id=CHILD_A, version=2, wrapped=wrapped) == child_key


@pytest.mark.parametrize(
    ("child_id", "version"),
    [(CHILD_B, 1), (CHILD_A, 2), (CHILD_A[:-1], 1), (CHILD_A.upper(), 1)],
    ids=["other-child", "other-version", "prefix-of-child-id", "other-spelling"],
)
def test_child_key_wrapped_for_another_context_fails(child_id: str, version: int) -> None:
    root = FakeRootKeyProvider()
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=generate_key())
    with pytest.raises(KeyUnwrapError):
        unwrap_child_key(root, child_id=child_id, version=version, wrapped=wrapped)


def test_child_key_survives_root_rotation() -> None:
    root = FakeRootKeyProvider()
    child_key = generate_key()
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=child_key)
    root.rotate()
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=wrapped) == child_key


def test_a_root_wrapped_value_that_is_not_a_key_fails() -> None:
    """A value of another length wrapped under the very same context is not a child key."""
    root = FakeRootKeyProvider()
    odd = root.wrap(b"short", context=_child_key_context(child_id=CHILD_A, version=1))
    with pytest.raises(KeyUnwrapError):
        unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=odd)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 16, b"\x00" * 33])
def test_wrapping_a_key_of_the_wrong_size_is_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        wrap_child_key(FakeRootKeyProvider(), child_id=CHILD_A, version=1, child_key=bad)
    with pytest.raises(ValueError):
        wrap_record_key(child_key=bad, attributes=ATTRIBUTES, record_key=generate_key())
    with pytest.raises(ValueError):
        wrap_record_key(child_key=generate_key(), attributes=ATTRIBUTES, record_key=bad)


@pytest.mark.parametrize("version", [0, -1, 2**32])
def test_child_key_version_out_of_range_is_refused(version: int) -> None:
    with pytest.raises(ValueError):
        wrap_child_key(
            FakeRootKeyProvider(), child_id=CHILD_A, version=version, child_key=b"k" * 32
        )


def test_record_key_round_trip() -> None:
    child_key, record_key = generate_key(), generate_key()
    wrapped = wrap_record_key(child_key=child_key, attributes=ATTRIBUTES, record_key=record_key)
    assert len(wrapped) == 12 + 32 + 16
    assert record_key not in wrapped
    assert (
        unwrap_record_key(child_key=child_key, attributes=ATTRIBUTES, wrapped=wrapped) == record_key
    )


def test_record_key_accepts_children_in_any_order() -> None:
    child_key, record_key = generate_key(), generate_key()
    wrapped = wrap_record_key(child_key=child_key, attributes=ATTRIBUTES, record_key=record_key)
    reordered = dataclasses.replace(ATTRIBUTES, child_ids=tuple(reversed(ATTRIBUTES.child_ids)))
    assert unwrap_record_key(child_key=child_key, attributes=reordered, wrapped=wrapped) == (
        record_key
    )


ALTERED = {
    "record_id": dataclasses.replace(ATTRIBUTES, record_id=bytes.fromhex("0d" * 16)),
    "version": dataclasses.replace(ATTRIBUTES, version=4),
    "child_removed": dataclasses.replace(ATTRIBUTES, child_ids=(bytes.fromhex(CHILD_A),)),
    "child_added": dataclasses.replace(
        ATTRIBUTES, child_ids=(*ATTRIBUTES.child_ids, bytes.fromhex("c3" * 16))
    ),
    "child_replaced": dataclasses.replace(
        ATTRIBUTES, child_ids=(bytes.fromhex(CHILD_A), bytes.fromhex("c3" * 16))
    ),
    "category": dataclasses.replace(ATTRIBUTES, category=Category.SAFEGUARDING),
}


@pytest.mark.parametrize("field", sorted(ALTERED))
def test_record_key_with_altered_attributes_fails(field: str) -> None:
    child_key = generate_key()
    wrapped = wrap_record_key(child_key=child_key, attributes=ATTRIBUTES, record_key=generate_key())
    with pytest.raises(KeyUnwrapError) as caught:
        unwrap_record_key(child_key=child_key, attributes=ALTERED[field], wrapped=wrapped)
    assert caught.value.__cause__ is not None


def test_record_key_under_another_child_key_fails() -> None:
    wrapped = wrap_record_key(
        child_key=generate_key(), attributes=ATTRIBUTES, record_key=generate_key()
    )
    with pytest.raises(KeyUnwrapError):
        unwrap_record_key(child_key=generate_key(), attributes=ATTRIBUTES, wrapped=wrapped)


@pytest.mark.parametrize("position", [0, 11, 12, 43, 44, 59])
def test_record_key_with_tampered_bytes_fails(position: int) -> None:
    child_key = generate_key()
    wrapped = bytearray(
        wrap_record_key(child_key=child_key, attributes=ATTRIBUTES, record_key=generate_key())
    )
    wrapped[position] ^= 0x80
    with pytest.raises(KeyUnwrapError):
        unwrap_record_key(child_key=child_key, attributes=ATTRIBUTES, wrapped=bytes(wrapped))


@pytest.mark.parametrize("length", [0, 12, 59, 61])
def test_record_key_of_the_wrong_length_fails(length: int) -> None:
    child_key = generate_key()
    wrapped = wrap_record_key(child_key=child_key, attributes=ATTRIBUTES, record_key=generate_key())
    resized = (wrapped + b"\x00")[:length]
    with pytest.raises(KeyUnwrapError):
        unwrap_record_key(child_key=child_key, attributes=ATTRIBUTES, wrapped=resized)


def test_record_key_with_a_malformed_child_key_fails_opaquely() -> None:
    wrapped = wrap_record_key(
        child_key=generate_key(), attributes=ATTRIBUTES, record_key=generate_key()
    )
    with pytest.raises(KeyUnwrapError):
        unwrap_record_key(child_key=b"short", attributes=ATTRIBUTES, wrapped=wrapped)


def test_each_child_of_a_group_record_unwraps_its_own_copy() -> None:
    """docs/decisions/0002: one wrap per child; losing one child's key leaves the other's."""
    record_key = generate_key()
    keys = {CHILD_A: generate_key(), CHILD_B: generate_key()}
    wraps = {
        child: wrap_record_key(child_key=key, attributes=ATTRIBUTES, record_key=record_key)
        for child, key in keys.items()
    }
    del keys[CHILD_A]
    assert (
        unwrap_record_key(child_key=keys[CHILD_B], attributes=ATTRIBUTES, wrapped=wraps[CHILD_B])
        == record_key
    )
    with pytest.raises(KeyUnwrapError):
        unwrap_record_key(child_key=keys[CHILD_B], attributes=ATTRIBUTES, wrapped=wraps[CHILD_A])
