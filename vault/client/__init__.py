"""The Carevault client SDK: device identity, the key file, and the ``Client``."""

from vault.client.client import Client
from vault.client.identity import DeviceIdentity, DeviceKeys
from vault.client.keyfile import KeyFileInfo, load_identity, read_info, save_identity
from vault.client.models import (
    Child,
    DeviceInfo,
    Disclosure,
    EnrolmentCode,
    Me,
    Notification,
    Offboarded,
    Proposal,
    ReceivedItem,
    RecordInfo,
    RecordRef,
    Share,
    ShareDownload,
    ShareItem,
)
from vault.client.shares import ShareProgress

__all__ = [
    "Child",
    "Client",
    "DeviceIdentity",
    "DeviceInfo",
    "DeviceKeys",
    "Disclosure",
    "EnrolmentCode",
    "KeyFileInfo",
    "Me",
    "Notification",
    "Offboarded",
    "Proposal",
    "ReceivedItem",
    "RecordInfo",
    "RecordRef",
    "Share",
    "ShareDownload",
    "ShareItem",
    "ShareProgress",
    "load_identity",
    "read_info",
    "save_identity",
]
