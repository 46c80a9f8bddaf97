"""The device key file: round trip, secrecy at rest, and every way unlocking must fail."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from vault.client.identity import DeviceIdentity, DeviceKeys, b64encode
from vault.client.keyfile import load_identity, read_info, save_identity
from vault.errors import KeyFileError

# The weakest parameters libsodium allows keep these tests fast; the default is tested once.
FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}


def _identity() -> DeviceIdentity:
    return DeviceIdentity(
        service_url="http://127.0.0.1:8800",
        principal_id="a" * 32,
        device_id="b" * 32,
        audience="carevault",
        keys=DeviceKeys.generate(),
    )


def _raw(identity: DeviceIdentity) -> list[bytes]:
    return [
        identity.keys.signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
        identity.keys.receiving_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
    ]


def test_round_trip_with_default_kdf_parameters(tmp_path: Path) -> None:
    identity = _identity()
    path = tmp_path / "device.key"
    save_identity(path, identity, "correct horse")
    loaded = load_identity(path, "correct horse")
    assert loaded.device_id == identity.device_id
    assert loaded.principal_id == identity.principal_id
    assert loaded.audience == identity.audience
    assert loaded.service_url == identity.service_url
    assert _raw(loaded) == _raw(identity)
    document = json.loads(path.read_text())
    assert document["kdf"]["memlimit"] == argon2id.MEMLIMIT_INTERACTIVE


def test_file_is_private_and_holds_no_key_in_clear(tmp_path: Path) -> None:
    identity = _identity()
    path = tmp_path / "profile" / "device.key"
    save_identity(path, identity, "pw", **FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    for raw in _raw(identity):
        assert raw not in data
        assert b64encode(raw).encode() not in data
        assert raw.hex().encode() not in data
    assert list(path.parent.iterdir()) == [path], "no temporary file may be left behind"


def test_overwrite_is_atomic_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    save_identity(path, _identity(), "one", **FAST)
    second = _identity()
    save_identity(path, second, "two", **FAST)
    assert _raw(load_identity(path, "two")) == _raw(second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_passphrase_fails(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    save_identity(path, _identity(), "right", **FAST)
    with pytest.raises(KeyFileError, match="passphrase is wrong or the file is damaged"):
        load_identity(path, "wrong")


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        save_identity(tmp_path / "device.key", _identity(), "", **FAST)
    assert not (tmp_path / "device.key").exists()


def _edited_key_file(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A key file saved with the passphrase "pw", then its JSON document changed by ``edit``."""
    path = tmp_path / "device.key"
    save_identity(path, _identity(), "pw", **FAST)
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    return path


def test_altered_sealed_part_fails(tmp_path: Path) -> None:
    def alter(document: dict[str, Any]) -> None:
        sealed = document["sealed"]
        document["sealed"] = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]

    path = _edited_key_file(tmp_path, alter)
    with pytest.raises(KeyFileError):
        load_identity(path, "pw")


def test_edited_clear_fields_are_detected(tmp_path: Path) -> None:
    path = _edited_key_file(
        tmp_path, lambda document: document["public"].update(service_url="http://evil.example")
    )
    assert read_info(path).service_url == "http://evil.example"
    with pytest.raises(KeyFileError):
        load_identity(path, "pw")


def test_absurd_kdf_memory_is_refused(tmp_path: Path) -> None:
    path = _edited_key_file(tmp_path, lambda document: document["kdf"].update(memlimit=1 << 40))
    with pytest.raises(KeyFileError):
        load_identity(path, "pw")


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"format": "other"}'])
def test_not_a_key_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError):
        load_identity(path, "pw")


def test_missing_file_tells_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="enrol this device"):
        load_identity(tmp_path / "nothing.key", "pw")


def test_repr_shows_no_key_material() -> None:
    identity = _identity()
    text = repr(identity)
    for raw in _raw(identity):
        assert raw.hex() not in text
        assert b64encode(raw) not in text
    assert "signing_key" not in text
