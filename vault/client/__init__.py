"""The Carevault client SDK: device identity, the key file, and the ``Client``."""

from vault.client.identity import DeviceIdentity, DeviceKeys
from vault.client.keyfile import KeyFileInfo, load_identity, read_info, save_identity

__all__ = [
    "DeviceIdentity",
    "DeviceKeys",
    "KeyFileInfo",
    "load_identity",
    "read_info",
    "save_identity",
]
