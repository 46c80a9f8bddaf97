"""Sealing record keys to a device: one agreement per batch, every alteration fails."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import SealError, VaultError
from vault.sealing import BatchOpener, SealedBatch, open_sealed, seal_batch

CONTEXT = bytes.fromhex("11" * 16) + b"\x00" + b"request-nonce-1"


def _items(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"attributes-%d" % i, os.urandom(32)) for i in range(n)]


@pytest.fixture
def device() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def _seal(device: X25519PrivateKey, items: list[tuple[bytes, bytes]]) -> SealedBatch:
    public = device.public_key().public_bytes_raw()
    return seal_batch(recipient_public=public, context=CONTEXT, items=items)


def test_batch_of_1000_round_trips(device: X25519PrivateKey) -> None:
    items = _items(1000)
    batch = _seal(device, items)
    assert len(batch.sealed) == 1000
    opener = BatchOpener(
        recipient_private=device, ephemeral_public=batch.ephemeral_public, context=CONTEXT
    )
    assert [opener.open(s, aad=aad) for s, (aad, _) in zip(batch.sealed, items, strict=True)] == [
        key for _, key in items
    ]


def test_open_sealed_opens_one_item(device: X25519PrivateKey) -> None:
    items = _items(3)
    batch = _seal(device, items)
    opened = open_sealed(
        recipient_private=device,
        ephemeral_public=batch.ephemeral_public,
        context=CONTEXT,
        sealed=batch.sealed[1],
        aad=items[1][0],
    )
    assert opened == items[1][1]


def test_sealed_bytes_do_not_contain_the_key(device: X25519PrivateKey) -> None:
    items = _items(1)
    batch = _seal(device, items)
    assert items[0][1] not in batch.sealed[0]


def test_construction_matches_the_spec(device: X25519PrivateKey) -> None:
    """An independent reading of docs/SEALING.md opens what seal_batch produced."""
    items = _items(1)
    batch = _seal(device, items)
    recipient_public = device.public_key().public_bytes_raw()
    shared = device.exchange(X25519PublicKey.from_public_bytes(batch.ephemeral_public))
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=batch.ephemeral_public + recipient_public,
        info=b"carevault/seal/v1" + CONTEXT,
    ).derive(shared)
    sealed = batch.sealed[0]
    assert len(sealed) == 12 + 32 + 16
    assert AESGCM(key).decrypt(sealed[:12], sealed[12:], items[0][0]) == items[0][1]


def test_ephemeral_key_differs_per_batch(device: X25519PrivateKey) -> None:
    items = _items(2)
    first, second = _seal(device, items), _seal(device, items)
    assert first.ephemeral_public != second.ephemeral_public
    assert first.sealed != second.sealed


def _open(
    device: X25519PrivateKey,
    batch: SealedBatch,
    index: int,
    *,
    aad: bytes,
    context: bytes = CONTEXT,
) -> bytes:
    return open_sealed(
        recipient_private=device,
        ephemeral_public=batch.ephemeral_public,
        context=context,
        sealed=batch.sealed[index],
        aad=aad,
    )


def test_wrong_aad_fails(device: X25519PrivateKey) -> None:
    items = _items(1)
    batch = _seal(device, items)
    with pytest.raises(SealError):
        _open(device, batch, 0, aad=items[0][0] + b"x")


def test_wrong_context_fails(device: X25519PrivateKey) -> None:
    items = _items(1)
    batch = _seal(device, items)
    other = bytes.fromhex("11" * 16) + b"\x00" + b"request-nonce-2"
    with pytest.raises(SealError):
        _open(device, batch, 0, aad=items[0][0], context=other)


def test_wrong_recipient_fails(device: X25519PrivateKey) -> None:
    items = _items(1)
    batch = _seal(device, items)
    with pytest.raises(SealError):
        _open(X25519PrivateKey.generate(), batch, 0, aad=items[0][0])


def test_other_ephemeral_key_fails(device: X25519PrivateKey) -> None:
    items = _items(1)
    batch = _seal(device, items)
    other = _seal(device, items)
    mixed = SealedBatch(ephemeral_public=other.ephemeral_public, sealed=batch.sealed)
    with pytest.raises(SealError):
        _open(device, mixed, 0, aad=items[0][0])


@pytest.mark.parametrize(
    ("where", "position"),
    [("nonce", 0), ("nonce", 11), ("ciphertext", 12), ("ciphertext", 43), ("tag", -1)],
)
def test_tampered_bytes_fail(device: X25519PrivateKey, where: str, position: int) -> None:
    items = _items(1)
    batch = _seal(device, items)
    tampered = bytearray(batch.sealed[0])
    tampered[position] ^= 0x01
    with pytest.raises(SealError) as caught:
        _open(device, SealedBatch(batch.ephemeral_public, [bytes(tampered)]), 0, aad=items[0][0])
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize("length", [0, 1, 27])
def test_truncated_item_fails(device: X25519PrivateKey, length: int) -> None:
    items = _items(1)
    batch = _seal(device, items)
    short = SealedBatch(batch.ephemeral_public, [batch.sealed[0][:length]])
    with pytest.raises(SealError):
        _open(device, short, 0, aad=items[0][0])


def test_items_swapped_between_positions_fail(device: X25519PrivateKey) -> None:
    items = _items(2)
    batch = _seal(device, items)
    swapped = SealedBatch(batch.ephemeral_public, [batch.sealed[1], batch.sealed[0]])
    for index in (0, 1):
        with pytest.raises(SealError):
            _open(device, swapped, index, aad=items[index][0])


def test_items_from_another_batch_fail(device: X25519PrivateKey) -> None:
    items = _items(1)
    first, second = _seal(device, items), _seal(device, items)
    spliced = SealedBatch(first.ephemeral_public, second.sealed)
    with pytest.raises(SealError):
        _open(device, spliced, 0, aad=items[0][0])


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 32, b"\x01" + b"\x00" * 31])
def test_invalid_recipient_public_key_is_refused(bad: bytes) -> None:
    # All-zero and the point of order 1 (u = 1) give an all-zero shared secret.
    with pytest.raises(SealError):
        seal_batch(recipient_public=bad, context=CONTEXT, items=_items(1))


@pytest.mark.parametrize("bad", [b"\x00" * 31, b"\x00" * 32])
def test_invalid_ephemeral_public_key_is_refused(device: X25519PrivateKey, bad: bytes) -> None:
    with pytest.raises(SealError):
        BatchOpener(recipient_private=device, ephemeral_public=bad, context=CONTEXT)


def test_seal_error_is_a_vault_error() -> None:
    assert issubclass(SealError, VaultError)
