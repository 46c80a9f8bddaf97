"""What a release does once per request instead of once per item (decision 0026), checked
against the per-item functions it replaces: the canonical attributes of many records of one
set of children and category, and record keys unwrapped under one child key's cipher."""

from __future__ import annotations

import os

import pytest

from keyservice.errors import KeyUnwrapError
from keyservice.keys import generate_key, unwrap_record_key, wrap_record_key
from keyservice.keys.hierarchy import RecordKeyUnwrapper
from vault.format import FormatError, RecordAttributes

CHILDREN = (os.urandom(16), os.urandom(16))


def _attributes(record_id: bytes, version: int, category: str = "photo") -> RecordAttributes:
    return RecordAttributes(
        record_id=record_id, version=version, child_ids=CHILDREN, category=category
    )


@pytest.mark.parametrize("version", [1, 2, 2**32 - 1])
def test_canonical_for_is_the_canonical_of_those_attributes(version: int) -> None:
    template = _attributes(os.urandom(16), 7)
    record_id = os.urandom(16)
    assert template.canonical_for(record_id, version) == _attributes(record_id, version).canonical()
    assert template.canonical_for(record_id, version) != template.canonical()


@pytest.mark.parametrize(
    ("record_id", "version"), [(os.urandom(15), 1), (os.urandom(17), 1), (os.urandom(16), 0)]
)
def test_canonical_for_refuses_what_the_attributes_refuse(record_id: bytes, version: int) -> None:
    template = _attributes(os.urandom(16), 1)
    with pytest.raises(FormatError):
        _attributes(record_id, version)
    with pytest.raises(FormatError):
        template.canonical_for(record_id, version)


def test_one_unwrapper_opens_what_unwrap_record_key_opens_and_nothing_else() -> None:
    child_key, other_key = generate_key(), generate_key()
    records = [_attributes(os.urandom(16), 1) for _ in range(3)]
    record_keys = [generate_key() for _ in records]
    wrapped = [
        wrap_record_key(child_key=child_key, attributes=a, record_key=k)
        for a, k in zip(records, record_keys, strict=True)
    ]
    unwrapper = RecordKeyUnwrapper(child_key)
    for attributes, key, wrap in zip(records, record_keys, wrapped, strict=True):
        assert unwrapper.unwrap(aad=attributes.canonical(), wrapped=wrap) == key
        assert unwrap_record_key(child_key=child_key, attributes=attributes, wrapped=wrap) == key
    # Another record's attributes, another child key, damaged or short bytes: refused.
    with pytest.raises(KeyUnwrapError):
        unwrapper.unwrap(aad=records[1].canonical(), wrapped=wrapped[0])
    with pytest.raises(KeyUnwrapError):
        RecordKeyUnwrapper(other_key).unwrap(aad=records[0].canonical(), wrapped=wrapped[0])
    with pytest.raises(KeyUnwrapError):
        unwrapper.unwrap(aad=records[0].canonical(), wrapped=wrapped[0][:-1] + b"\0")
    with pytest.raises(KeyUnwrapError):
        unwrapper.unwrap(aad=records[0].canonical(), wrapped=wrapped[0][:20])
    with pytest.raises(KeyUnwrapError):
        RecordKeyUnwrapper(b"short").unwrap(aad=records[0].canonical(), wrapped=wrapped[0])
