"""Carevault client library: the record format, blob stores and the client SDK."""

from vault.client import Client, DeviceIdentity, load_identity, save_identity

__all__ = ["Client", "DeviceIdentity", "load_identity", "save_identity"]
