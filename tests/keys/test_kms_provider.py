"""The AWS KMS root key provider against moto's KMS over real HTTP (the session's moto server).

What the KMS refuses, the provider refuses: another child's or version's context, altered or
relabelled wraps, another key's wraps; a missing, disabled, pending-deletion or signing key,
or an unreachable endpoint, refuses to open with a message naming CAREVAULT_ROOT_KEY.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from keyservice.errors import KeyUnwrapError, RootKeyError
from keyservice.keys import (
    KmsRootKeyProvider,
    generate_key,
    rewrap_child_key,
    unwrap_child_key,
    wrap_child_key,
)
from tests.servers import S3Server, free_port

pytestmark = pytest.mark.integration

CHILD_A = "c-0001"
CHILD_B = "c-0002"


@pytest.fixture
def kms(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def _open(kms: S3Server, key_id: str) -> KmsRootKeyProvider:
    return KmsRootKeyProvider(key_id, region=kms.region, endpoint_url=kms.endpoint_url)


@pytest.fixture
def key_id(kms: S3Server) -> str:
    return kms.new_kms_key()


@pytest.fixture
def root(kms: S3Server, key_id: str) -> KmsRootKeyProvider:
    return _open(kms, key_id)


# --- refusals ------------------------------------------------------------------------------


def test_another_childs_context_refuses(root: KmsRootKeyProvider) -> None:
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=generate_key())
    with pytest.raises(KeyUnwrapError) as caught:
        unwrap_child_key(root, child_id=CHILD_B, version=1, wrapped=wrapped)
    assert caught.value.__cause__ is not None


def test_another_versions_context_refuses(root: KmsRootKeyProvider) -> None:
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=generate_key())
    with pytest.raises(KeyUnwrapError):
        unwrap_child_key(root, child_id=CHILD_A, version=2, wrapped=wrapped)
    with pytest.raises(KeyUnwrapError):
        rewrap_child_key(root, child_id=CHILD_A, version=2, wrapped=wrapped)


@pytest.mark.parametrize("position", [3, 4, 20, -1])
def test_altered_wraps_refuse(root: KmsRootKeyProvider, position: int) -> None:
    wrapped = bytearray(root.wrap(generate_key(), context=b"c"))
    wrapped[position] ^= 0x01
    with pytest.raises(KeyUnwrapError):
        root.unwrap(bytes(wrapped), context=b"c")


@pytest.mark.parametrize("length", [0, 3, 4, 20])
def test_truncated_wraps_refuse(root: KmsRootKeyProvider, length: int) -> None:
    wrapped = root.wrap(generate_key(), context=b"c")
    with pytest.raises(KeyUnwrapError):
        root.unwrap(wrapped[:length], context=b"c")


def test_a_wrap_relabelled_as_another_version_refuses(root: KmsRootKeyProvider) -> None:
    old = root.wrap(generate_key(), context=b"c")
    root.rotate()
    with pytest.raises(KeyUnwrapError):
        root.unwrap((2).to_bytes(4, "big") + old[4:], context=b"c")
    with pytest.raises(KeyUnwrapError):
        root.unwrap((9).to_bytes(4, "big") + old[4:], context=b"c")


def test_another_keys_wrap_refuses(kms: S3Server, root: KmsRootKeyProvider) -> None:
    other = _open(kms, kms.new_kms_key())
    wrapped = other.wrap(generate_key(), context=b"c")
    with pytest.raises(KeyUnwrapError):
        root.unwrap(wrapped, context=b"c")


def test_a_missing_key_refuses_to_open(kms: S3Server) -> None:
    with pytest.raises(RootKeyError) as caught:
        _open(kms, "11111111-2222-3333-4444-555555555555")
    assert "CAREVAULT_ROOT_KEY=kms:11111111-2222-3333-4444-555555555555" in str(caught.value)
    assert "NotFoundException" in str(caught.value)


def test_a_disabled_key_refuses_to_open(kms: S3Server, key_id: str) -> None:
    kms.kms_client().disable_key(KeyId=key_id)
    with pytest.raises(RootKeyError) as caught:
        _open(kms, key_id)
    assert f"CAREVAULT_ROOT_KEY=kms:{key_id}" in str(caught.value)
    assert "Disabled" in str(caught.value)
    kms.kms_client().enable_key(KeyId=key_id)
    assert _open(kms, key_id).current_version() == 1


def test_a_key_pending_deletion_refuses_to_open(kms: S3Server, key_id: str) -> None:
    kms.kms_client().schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(RootKeyError) as caught:
        _open(kms, key_id)
    assert "PendingDeletion" in str(caught.value)


def test_a_signing_key_refuses_to_open(kms: S3Server) -> None:
    signing = kms.kms_client().create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")
    key_id = signing["KeyMetadata"]["KeyId"]
    with pytest.raises(RootKeyError) as caught:
        _open(kms, key_id)
    assert "not a symmetric encryption key" in str(caught.value)


def test_an_unreachable_kms_refuses_to_open_promptly(kms: S3Server, key_id: str) -> None:
    started = time.monotonic()
    with pytest.raises(RootKeyError) as caught:
        KmsRootKeyProvider(
            key_id, region=kms.region, endpoint_url=f"http://127.0.0.1:{free_port()}"
        )
    assert "cannot be reached" in str(caught.value)
    assert "CAREVAULT_ROOT_KEY" in str(caught.value)
    assert time.monotonic() - started < 30


# --- what works, and what the KMS sees -----------------------------------------------------


def test_child_keys_round_trip(root: KmsRootKeyProvider) -> None:
    child_key = generate_key()
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=child_key)
    assert child_key not in wrapped
    assert wrapped[:4] == (1).to_bytes(4, "big")
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=wrapped) == child_key


def test_the_kms_sees_the_child_and_versions_as_its_encryption_context(
    kms: S3Server, key_id: str, root: KmsRootKeyProvider
) -> None:
    child_key = generate_key()
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=3, child_key=child_key)
    context = {
        "carevault": "root/v1",
        "root_version": "1",
        "child_id": CHILD_A,
        "child_key_version": "3",
    }
    opened = kms.kms_client().decrypt(
        KeyId=key_id, CiphertextBlob=wrapped[4:], EncryptionContext=context
    )
    assert opened["Plaintext"] == child_key
    with pytest.raises(kms.kms_client().exceptions.InvalidCiphertextException):
        kms.kms_client().decrypt(
            KeyId=key_id,
            CiphertextBlob=wrapped[4:],
            EncryptionContext={**context, "child_key_version": "4"},
        )


def test_rotation_keeps_old_wraps_and_rewrap_moves_them(
    kms: S3Server, key_id: str, root: KmsRootKeyProvider
) -> None:
    child_key = generate_key()
    old = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=child_key)
    assert root.rotate() == 2
    assert root.current_version() == 2
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=old) == child_key
    moved = rewrap_child_key(root, child_id=CHILD_A, version=1, wrapped=old)
    assert moved[:4] == (2).to_bytes(4, "big")
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=moved) == child_key
    # Another instance opened before the rotation learns of it from the wrap.
    assert _open(kms, key_id).current_version() == 2


def test_an_instance_opened_before_a_rotation_opens_newer_wraps(
    kms: S3Server, key_id: str, root: KmsRootKeyProvider
) -> None:
    rotating = _open(kms, key_id)
    rotating.rotate()
    child_key = generate_key()
    newer = wrap_child_key(rotating, child_id=CHILD_A, version=1, child_key=child_key)
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=newer) == child_key
    assert root.current_version() == 2


@pytest.fixture
def kms_calls(kms: S3Server) -> Iterator[list[str]]:
    """The KMS operations of clients made while it is active (botocore's event hooks)."""
    calls: list[str] = []
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    boto3.DEFAULT_SESSION.events.register("before-call.kms", record)
    try:
        yield calls
    finally:
        boto3.DEFAULT_SESSION = None


def test_one_kms_call_per_child_key_version(
    kms: S3Server, key_id: str, kms_calls: list[str]
) -> None:
    root = _open(kms, key_id)
    assert kms_calls == ["DescribeKey", "ListKeyRotations"]
    kms_calls.clear()
    wrapped = [
        wrap_child_key(root, child_id=f"c-{n}", version=1, child_key=generate_key())
        for n in range(5)
    ]
    assert kms_calls == ["Encrypt"] * 5
    kms_calls.clear()
    for n, blob in enumerate(wrapped):
        unwrap_child_key(root, child_id=f"c-{n}", version=1, wrapped=blob)
    assert kms_calls == ["Decrypt"] * 5
    kms_calls.clear()
    for n, blob in enumerate(wrapped):
        rewrap_child_key(root, child_id=f"c-{n}", version=1, wrapped=blob)
    assert kms_calls == ["ReEncrypt"] * 5
