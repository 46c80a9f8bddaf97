"""The PKCS#11 root key provider against a SoftHSM2 token (the session's ``softhsm``).

AES-256-GCM inside the token: another child's or version's context, altered or relabelled
wraps refuse; a missing token or key refuses to open naming CAREVAULT_ROOT_KEY; a PIN file
others can read is refused; rotation generates the next version inside the token, sensitive
and never extractable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pkcs11 import Attribute, ObjectClass

from keyservice.errors import InsecureKeyFileError, KeyUnwrapError, RootKeyError
from keyservice.keys import (
    Pkcs11RootKeyProvider,
    generate_key,
    rewrap_child_key,
    unwrap_child_key,
    wrap_child_key,
)
from keyservice.keys.hsm import read_pin_file
from tests.servers import SoftHsm

pytestmark = pytest.mark.integration

CHILD_A = "c-0001"
CHILD_B = "c-0002"


def _open(
    softhsm: SoftHsm, *, token: str | None = None, key: str | None = None
) -> Pkcs11RootKeyProvider:
    return Pkcs11RootKeyProvider(
        module=softhsm.module,
        token_label=token or softhsm.token,
        key_label=key or softhsm.key_label,
        pin=read_pin_file(softhsm.pin_file),
    )


@pytest.fixture
def root(softhsm: SoftHsm) -> Pkcs11RootKeyProvider:
    return _open(softhsm)


# --- refusals ------------------------------------------------------------------------------


def test_another_childs_or_versions_context_refuses(root: Pkcs11RootKeyProvider) -> None:
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=generate_key())
    with pytest.raises(KeyUnwrapError) as caught:
        unwrap_child_key(root, child_id=CHILD_B, version=1, wrapped=wrapped)
    assert caught.value.__cause__ is not None
    with pytest.raises(KeyUnwrapError):
        unwrap_child_key(root, child_id=CHILD_A, version=2, wrapped=wrapped)
    with pytest.raises(KeyUnwrapError):
        rewrap_child_key(root, child_id=CHILD_B, version=1, wrapped=wrapped)


@pytest.mark.parametrize("position", [0, 3, 4, 15, 16, -1])
def test_altered_wraps_refuse(root: Pkcs11RootKeyProvider, position: int) -> None:
    wrapped = bytearray(root.wrap(generate_key(), context=b"c"))
    wrapped[position] ^= 0x01
    with pytest.raises(KeyUnwrapError):
        root.unwrap(bytes(wrapped), context=b"c")


@pytest.mark.parametrize("length", [0, 3, 4, 31])
def test_truncated_wraps_refuse(root: Pkcs11RootKeyProvider, length: int) -> None:
    wrapped = root.wrap(generate_key(), context=b"c")
    with pytest.raises(KeyUnwrapError):
        root.unwrap(wrapped[:length], context=b"c")


def test_an_unknown_version_refuses(root: Pkcs11RootKeyProvider) -> None:
    wrapped = root.wrap(generate_key(), context=b"c")
    with pytest.raises(KeyUnwrapError):
        root.unwrap((4000).to_bytes(4, "big") + wrapped[4:], context=b"c")


def test_a_missing_key_refuses_to_open(softhsm: SoftHsm) -> None:
    with pytest.raises(RootKeyError) as caught:
        _open(softhsm, key="no-such-key")
    message = str(caught.value)
    assert f"CAREVAULT_ROOT_KEY=pkcs11:token={softhsm.token};object=no-such-key" in message
    assert "no AES-256 secret key labelled 'no-such-key'" in message


def test_a_missing_token_refuses_to_open(softhsm: SoftHsm) -> None:
    with pytest.raises(RootKeyError) as caught:
        _open(softhsm, token="no-such-token")
    assert "CAREVAULT_ROOT_KEY=pkcs11:token=no-such-token" in str(caught.value)
    assert "no token labelled 'no-such-token'" in str(caught.value)


def test_a_pin_file_others_can_read_is_refused(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("123456\n")
    pin_file.chmod(0o640)
    with pytest.raises(InsecureKeyFileError) as caught:
        read_pin_file(pin_file)
    assert f"chmod 600 {pin_file}" in str(caught.value)
    assert "123456" not in str(caught.value)
    pin_file.chmod(0o600)
    assert read_pin_file(pin_file) == "123456"


def test_an_empty_or_missing_pin_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RootKeyError, match="CAREVAULT_PKCS11_PIN_FILE"):
        read_pin_file(tmp_path / "missing")
    (tmp_path / "empty").touch(mode=0o600)
    with pytest.raises(RootKeyError, match="holds no PIN"):
        read_pin_file(tmp_path / "empty")


# --- what works ----------------------------------------------------------------------------


def test_child_keys_round_trip(root: Pkcs11RootKeyProvider) -> None:
    child_key = generate_key()
    wrapped = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=child_key)
    assert child_key not in wrapped
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=wrapped) == child_key
    moved = rewrap_child_key(root, child_id=CHILD_A, version=1, wrapped=wrapped)
    assert moved != wrapped
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=moved) == child_key


def test_rotation_makes_an_unextractable_key_in_the_token(softhsm: SoftHsm) -> None:
    # A key of its own, so that rotating does not change the session's other tests' key.
    label = "rotating-root"
    softhsm.add_key(label)
    root = _open(softhsm, key=label)
    other = _open(softhsm, key=label)
    child_key = generate_key()
    old = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=child_key)
    assert root.rotate() == 2
    assert root.current_version() == 2
    newer = wrap_child_key(root, child_id=CHILD_A, version=1, child_key=child_key)
    assert newer[:4] == (2).to_bytes(4, "big")
    assert unwrap_child_key(root, child_id=CHILD_A, version=1, wrapped=old) == child_key
    # An instance opened before the rotation finds the new version in the token.
    assert unwrap_child_key(other, child_id=CHILD_A, version=1, wrapped=newer) == child_key
    with pytest.raises(KeyUnwrapError):
        root.unwrap((2).to_bytes(4, "big") + old[4:], context=b"c")
    with softhsm.session() as session:
        keys = list(
            session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})
        )
        ids = sorted(bytes(k.id) for k in keys)
        flags = [(k[Attribute.SENSITIVE], k[Attribute.EXTRACTABLE]) for k in keys]
    assert ids == [(1).to_bytes(4, "big"), (2).to_bytes(4, "big")]
    assert flags == [(True, False), (True, False)]
