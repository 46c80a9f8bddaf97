"""Which root key provider a deployment uses: one setting, ``CAREVAULT_ROOT_KEY``.

    file:PATH                            a local key file (the default: <data dir>/root.key)
    kms:KEY_ID_OR_ARN_OR_ALIAS           AWS KMS; region CAREVAULT_KMS_REGION (else the AWS
                                         default), endpoint CAREVAULT_KMS_ENDPOINT_URL
    pkcs11:token=LABEL;object=LABEL      a PKCS#11 token (RFC 7512's two path attributes,
                                         percent-encoded); module CAREVAULT_PKCS11_MODULE,
                                         PIN in CAREVAULT_PKCS11_PIN_FILE or CAREVAULT_PKCS11_PIN

``CAREVAULT_ROOT_KEY_PREVIOUS`` (same forms, unset by default) names the provider a deployment
is moving away from (keys/transition.py).

A value of another form, or a provider that cannot be opened, is a RootKeyError whose message
names the setting: the service refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from keyservice.errors import RootKeyError
from keyservice.keys.hsm import Pkcs11RootKeyProvider, read_pin_file
from keyservice.keys.kms import KmsRootKeyProvider
from keyservice.keys.local_file import LocalFileRootKeyProvider
from keyservice.keys.root import RootKeyProvider
from keyservice.keys.transition import RootKeyTransition
from keyservice.settings import Settings

SETTING = "CAREVAULT_ROOT_KEY"
FORMS = "file:PATH, kms:KEY_ID_OR_ARN or pkcs11:token=LABEL;object=LABEL"


@dataclass(frozen=True)
class FileRootKey:
    path: Path


@dataclass(frozen=True)
class KmsRootKey:
    key_id: str


@dataclass(frozen=True)
class Pkcs11RootKey:
    token: str
    object: str


RootKeySpec = FileRootKey | KmsRootKey | Pkcs11RootKey


def parse_root_key(value: str) -> RootKeySpec:
    """The provider ``value`` names; a RootKeyError naming the setting if it names none."""
    scheme, colon, rest = value.partition(":")
    if colon and rest:
        if scheme == "file":
            return FileRootKey(Path(rest))
        if scheme == "kms" and not any(c.isspace() for c in rest):
            return KmsRootKey(rest)
        if scheme == "pkcs11":
            pkcs11 = _parse_pkcs11(rest)
            if pkcs11 is not None:
                return pkcs11
    raise RootKeyError(f"{SETTING}={value!r} is not a root key: use {FORMS}")


def _parse_pkcs11(path: str) -> Pkcs11RootKey | None:
    attributes: dict[str, str] = {}
    for part in path.split(";"):
        name, equals, encoded = part.partition("=")
        if not equals or name in attributes or name not in {"token", "object"}:
            return None
        try:
            attributes[name] = unquote(encoded, errors="strict")
        except UnicodeDecodeError:
            return None
    if set(attributes) != {"token", "object"} or not all(attributes.values()):
        return None
    return Pkcs11RootKey(token=attributes["token"], object=attributes["object"])


def open_root_key(settings: Settings, value: str | None = None) -> RootKeyProvider:
    """The provider ``value`` (default: the setting) names, opened and checked; with
    ``CAREVAULT_ROOT_KEY_PREVIOUS`` set (and no ``value``), a transition from that provider."""
    if value is None and settings.root_key_previous:
        return RootKeyTransition(
            _open(settings, settings.root_key), _open(settings, settings.root_key_previous)
        )
    return _open(settings, settings.root_key if value is None else value)


def _open(settings: Settings, value: str) -> RootKeyProvider:
    spec = parse_root_key(value)
    if isinstance(spec, FileRootKey):
        return LocalFileRootKeyProvider(spec.path)
    if isinstance(spec, KmsRootKey):
        return KmsRootKeyProvider(
            spec.key_id, region=settings.kms_region, endpoint_url=settings.kms_endpoint_url
        )
    if settings.pkcs11_module is None:
        raise RootKeyError(f"{SETTING}=pkcs11:… needs CAREVAULT_PKCS11_MODULE (the module's path)")
    if settings.pkcs11_pin_file is not None:
        pin = read_pin_file(settings.pkcs11_pin_file)
    elif settings.pkcs11_pin:
        pin = settings.pkcs11_pin
    else:
        raise RootKeyError(
            f"{SETTING}=pkcs11:… needs CAREVAULT_PKCS11_PIN_FILE (a file of mode 0600 holding "
            "the user PIN) or CAREVAULT_PKCS11_PIN"
        )
    return Pkcs11RootKeyProvider(
        module=settings.pkcs11_module, token_label=spec.token, key_label=spec.object, pin=pin
    )
