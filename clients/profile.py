"""The CLI profile: one directory per enrolled device (``--profile`` / ``CAREVAULT_HOME``).

It holds one file, ``device.key``: the service URL, principal id, device id and audience in
clear, and the device's private keys encrypted under the user's passphrase
(``vault.client.keyfile``). The passphrase comes from ``CAREVAULT_PASSPHRASE`` (for scripts)
or a prompt; it is never stored.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vault.client import DeviceIdentity, KeyFileInfo, load_identity, read_info, save_identity

KEY_FILE_NAME = "device.key"
PASSPHRASE_ENV = "CAREVAULT_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
HOME_ENV = "CAREVAULT_HOME"


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".carevault")


class Profile:
    """Where one device's key file lives, and how to unlock it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key_file = directory / KEY_FILE_NAME

    def exists(self) -> bool:
        return self.key_file.exists()

    def info(self) -> KeyFileInfo:
        return read_info(self.key_file)

    def unlock(self) -> DeviceIdentity:
        return load_identity(self.key_file, passphrase(confirm=False))

    def store(self, identity: DeviceIdentity, secret: str) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        save_identity(self.key_file, identity, secret)


def passphrase(*, confirm: bool) -> str:
    """The passphrase from the environment, or asked for without echo."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    text: str = typer.prompt(
        "Passphrase for this device's keys", hide_input=True, confirmation_prompt=confirm
    )
    return text
