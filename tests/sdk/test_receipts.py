"""The receipt statement an outside recipient's device signs (vault/receipts.py): its exact
bytes, order independence, domain separation, and what it refuses to build."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vault.receipts import (
    RECEIPT_PREFIX,
    ReceivedItem,
    receipt_statement,
    receipt_valid,
    sign_receipt,
)

SHARE = "a" * 32
PRINCIPAL = "b" * 32
DEVICE = "c" * 32
FIRST = ReceivedItem("1" * 32, 2, hashlib.sha256(b"one").digest())
SECOND = ReceivedItem("1" * 32, 10, hashlib.sha256(b"two").digest())
THIRD = ReceivedItem("2" * 32, 1, hashlib.sha256(b"three").digest())


def _statement(*items: ReceivedItem, **ids: str) -> bytes:
    return receipt_statement(
        share_id=ids.get("share_id", SHARE),
        principal_id=ids.get("principal_id", PRINCIPAL),
        device_id=ids.get("device_id", DEVICE),
        items=items,
    )


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def test_the_statement_is_the_prefix_and_canonical_json_with_digests_in_base64url() -> None:
    item = ReceivedItem("1" * 32, 1, bytes(32))
    assert _statement(item) == (
        b"carevault-receipt-v1\n"
        b'{"device_id":"' + DEVICE.encode() + b'",'
        b'"items":[{"ciphertext_sha256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",'
        b'"record_id":"' + item.record_id.encode() + b'","version":1}],'
        b'"principal_id":"' + PRINCIPAL.encode() + b'","share_id":"' + SHARE.encode() + b'"}'
    )


def test_the_order_items_are_given_in_does_not_change_the_statement() -> None:
    ordered = _statement(FIRST, SECOND, THIRD)
    assert _statement(THIRD, SECOND, FIRST) == ordered == _statement(SECOND, THIRD, FIRST)
    body = json.loads(ordered.removeprefix(RECEIPT_PREFIX))
    # By record id, then version as a number (2 before 10).
    assert [(i["record_id"], i["version"]) for i in body["items"]] == [
        (FIRST.record_id, 2),
        (SECOND.record_id, 10),
        (THIRD.record_id, 1),
    ]


def test_every_field_changes_the_statement() -> None:
    base = _statement(FIRST, THIRD)
    changed = [
        _statement(FIRST, THIRD, share_id="d" * 32),
        _statement(FIRST, THIRD, principal_id="d" * 32),
        _statement(FIRST, THIRD, device_id="d" * 32),
        _statement(FIRST),
        _statement(FIRST, THIRD, SECOND),
        _statement(ReceivedItem(FIRST.record_id, 3, FIRST.ciphertext_sha256), THIRD),
        _statement(ReceivedItem(FIRST.record_id, 2, hashlib.sha256(b"x").digest()), THIRD),
    ]
    assert len({base, *changed}) == len(changed) + 1


def test_a_signature_verifies_for_its_statement_and_device_only() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signature = sign_receipt(
        key, share_id=SHARE, principal_id=PRINCIPAL, device_id=DEVICE, items=[THIRD, FIRST]
    )
    statement = _statement(FIRST, THIRD)
    assert receipt_valid(_public(key), statement, signature)
    assert not receipt_valid(_public(other), statement, signature)
    assert not receipt_valid(_public(key), _statement(FIRST), signature)
    assert not receipt_valid(_public(key), statement, signature[:-1] + bytes([signature[-1] ^ 1]))
    assert not receipt_valid(_public(key), statement, signature[:63])
    assert not receipt_valid(b"\0" * 31, statement, signature)


def test_domain_separation_a_signature_of_the_bare_json_is_not_a_receipt() -> None:
    """The prefix is signed: a device's signature over the same JSON without it (anything
    else the key might sign) does not pass, nor does the statement under another prefix."""
    key = Ed25519PrivateKey.generate()
    statement = _statement(FIRST)
    bare = statement.removeprefix(RECEIPT_PREFIX)
    assert not receipt_valid(_public(key), statement, key.sign(bare))
    assert not receipt_valid(_public(key), bare, key.sign(bare))
    other_domain = b"carevault-receipt-v2\n" + bare
    assert not receipt_valid(_public(key), other_domain, key.sign(other_domain))
    assert receipt_valid(_public(key), statement, key.sign(statement))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ReceivedItem("X" * 32, 1, bytes(32)), "record_id"),
        (lambda: ReceivedItem("1" * 32, 0, bytes(32)), "at least 1"),
        (lambda: ReceivedItem("1" * 32, True, bytes(32)), "integer"),
        (lambda: ReceivedItem("1" * 32, 1, bytes(31)), "32-byte"),
        (lambda: _statement(FIRST, FIRST), "listed twice"),
        (lambda: _statement(FIRST, device_id="short"), "device_id"),
        (lambda: _statement(FIRST, share_id='a"b'), "share_id"),
    ],
)
def test_malformed_input_builds_no_statement(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()
