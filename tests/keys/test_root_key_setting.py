"""``CAREVAULT_ROOT_KEY``: its three forms, its default, and every other value refused with a
message that names the setting (keys/select.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyservice.errors import RootKeyError
from keyservice.keys import LocalFileRootKeyProvider, open_root_key, parse_root_key
from keyservice.keys.select import FileRootKey, KmsRootKey, Pkcs11RootKey
from keyservice.settings import Settings


@pytest.mark.parametrize(
    "value",
    [
        "",
        "root.key",
        "file:",
        "kms:",
        "kms:key id with spaces",
        "vault:transit/carevault",
        "FILE:/tmp/root.key",
        "pkcs11:",
        "pkcs11:token=t",
        "pkcs11:object=k",
        "pkcs11:token=t;object=",
        "pkcs11:token=t;object=k;pin-value=1234",
        "pkcs11:token=t;token=u;object=k",
        "pkcs11:token=t;object=%ff",
    ],
)
def test_other_values_are_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(RootKeyError) as caught:
        parse_root_key(value)
    assert str(caught.value).startswith(f"CAREVAULT_ROOT_KEY={value!r} is not a root key")
    assert "file:PATH, kms:KEY_ID_OR_ARN or pkcs11:token=LABEL;object=LABEL" in str(caught.value)


def test_a_pin_value_never_appears_in_the_refusal() -> None:
    with pytest.raises(RootKeyError) as caught:
        open_root_key(
            Settings.from_env({"CAREVAULT_DATA_DIR": "/tmp/x", "CAREVAULT_PKCS11_PIN": "4321"}),
            "pkcs11:token=t;object=k",
        )
    assert "CAREVAULT_PKCS11_MODULE" in str(caught.value)
    assert "4321" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("file:/var/lib/carevault/root.key", FileRootKey(Path("/var/lib/carevault/root.key"))),
        (
            "kms:1234abcd-12ab-34cd-56ef-1234567890ab",
            KmsRootKey("1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        (
            "kms:arn:aws:kms:eu-west-2:111122223333:key/1234abcd",
            KmsRootKey("arn:aws:kms:eu-west-2:111122223333:key/1234abcd"),
        ),
        ("kms:alias/carevault-root", KmsRootKey("alias/carevault-root")),
        ("pkcs11:token=hsm1;object=root", Pkcs11RootKey(token="hsm1", object="root")),
        ("pkcs11:object=root;token=My%20HSM", Pkcs11RootKey(token="My HSM", object="root")),
    ],
)
def test_the_three_forms(value: str, spec: object) -> None:
    assert parse_root_key(value) == spec


def test_the_default_is_the_local_file_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings.from_env({"CAREVAULT_DATA_DIR": str(tmp_path)})
    assert settings.root_key == f"file:{tmp_path / 'root.key'}"
    assert isinstance(open_root_key(settings), LocalFileRootKeyProvider)
    assert (tmp_path / "root.key").is_file()


def test_the_older_file_setting_is_read_when_the_new_one_is_unset(tmp_path: Path) -> None:
    older = {"CAREVAULT_DATA_DIR": str(tmp_path), "CAREVAULT_ROOT_KEY_FILE": "/k/root.key"}
    assert Settings.from_env(older).root_key == "file:/k/root.key"
    both = {**older, "CAREVAULT_ROOT_KEY": "kms:alias/root"}
    assert Settings.from_env(both).root_key == "kms:alias/root"


def test_the_pin_is_not_in_the_settings_repr() -> None:
    settings = Settings.from_env({"CAREVAULT_PKCS11_PIN": "987654"})
    assert settings.pkcs11_pin == "987654"
    assert "987654" not in repr(settings)
