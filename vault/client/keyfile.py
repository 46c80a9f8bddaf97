"""The device key file: a device identity encrypted under a passphrase.

Layout (JSON, one object):

    format      "carevault-device-key/1"
    kdf         {"name": "argon2id", "opslimit": int, "memlimit": int, "salt": b64}
    public      {"service_url", "principal_id", "device_id", "audience"}   (readable without
                the passphrase, so a profile can be shown before it is unlocked)
    sealed      b64 of nacl SecretBox(nonce || ciphertext) over a JSON object holding the
                public fields again and both raw private keys

The public fields are repeated inside the sealed part and compared on load, so editing them in
the clear part is detected. The file is written atomically with mode 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from vault.client.identity import DeviceIdentity, DeviceKeys, b64decode, b64encode
from vault.errors import KeyFileError

KEYFILE_FORMAT = "carevault-device-key/1"
# libsodium's "interactive" profile: 64 MiB and two passes, a fraction of a second per unlock.
DEFAULT_OPSLIMIT = argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT = argon2id.MEMLIMIT_INTERACTIVE
# A file claiming more than this is refused rather than letting it exhaust memory on load.
_MAX_MEMLIMIT = 1 << 30
_PUBLIC_FIELDS = ("service_url", "principal_id", "device_id", "audience")


@dataclass(frozen=True)
class KeyFileInfo:
    """The clear part of a key file."""

    service_url: str
    principal_id: str
    device_id: str
    audience: str


def _raw_private(identity: DeviceIdentity) -> tuple[bytes, bytes]:
    signing = identity.keys.signing_key.private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    receiving = identity.keys.receiving_key.private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return signing, receiving


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        passphrase.encode("utf-8"),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )


def save_identity(
    path: Path,
    identity: DeviceIdentity,
    passphrase: str,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> None:
    """Encrypt the identity under the passphrase and write it to path (atomic, mode 0600)."""
    if not passphrase:
        raise KeyFileError("a passphrase is required to protect the device keys")
    public = {name: getattr(identity, name) for name in _PUBLIC_FIELDS}
    signing, receiving = _raw_private(identity)
    secret = json.dumps(
        {**public, "signing_key": b64encode(signing), "receiving_key": b64encode(receiving)}
    ).encode("utf-8")
    salt = nacl.utils.random(argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
    document = {
        "format": KEYFILE_FORMAT,
        "kdf": {
            "name": "argon2id",
            "opslimit": opslimit,
            "memlimit": memlimit,
            "salt": b64encode(salt),
        },
        "public": public,
        "sealed": b64encode(bytes(box.encrypt(secret))),
    }
    _write_private(path, json.dumps(document, indent=2).encode("utf-8"))


def _write_private(path: Path, data: bytes) -> None:
    # The temp file is created 0600 by mkstemp, so the secret never exists with wider rights.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise KeyFileError(f"no device key file at {path}; enrol this device first") from exc
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"the device key file {path} cannot be read") from exc
    if not isinstance(document, dict) or document.get("format") != KEYFILE_FORMAT:
        raise KeyFileError(f"{path} is not a Carevault device key file")
    return document


def read_info(path: Path) -> KeyFileInfo:
    """The clear fields of a key file, without the passphrase. They are not authenticated."""
    public = _read_document(path).get("public")
    try:
        return KeyFileInfo(**{name: str(public[name]) for name in _PUBLIC_FIELDS})  # type: ignore[index]
    except (KeyError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a Carevault device key file") from exc


def load_identity(path: Path, passphrase: str) -> DeviceIdentity:
    """Decrypt the identity in path. A wrong passphrase and a damaged file give one error."""
    document = _read_document(path)
    try:
        kdf = document["kdf"]
        if kdf["name"] != "argon2id":
            raise ValueError("unknown kdf")
        opslimit, memlimit = int(kdf["opslimit"]), int(kdf["memlimit"])
        if not (
            argon2id.OPSLIMIT_MIN <= opslimit <= argon2id.OPSLIMIT_MAX
            and argon2id.MEMLIMIT_MIN <= memlimit <= _MAX_MEMLIMIT
        ):
            raise ValueError("kdf parameters out of range")
        box = nacl.secret.SecretBox(_derive(passphrase, b64decode(kdf["salt"]), opslimit, memlimit))
        secret = json.loads(box.decrypt(b64decode(document["sealed"])))
        public = document["public"]
        if any(secret[name] != public[name] for name in _PUBLIC_FIELDS):
            raise ValueError("clear fields do not match the sealed ones")
        keys = DeviceKeys(
            signing_key=Ed25519PrivateKey.from_private_bytes(b64decode(secret["signing_key"])),
            receiving_key=X25519PrivateKey.from_private_bytes(b64decode(secret["receiving_key"])),
        )
        return DeviceIdentity(
            service_url=secret["service_url"],
            principal_id=secret["principal_id"],
            device_id=secret["device_id"],
            audience=secret["audience"],
            keys=keys,
        )
    except (KeyError, TypeError, ValueError, nacl.exceptions.CryptoError) as exc:
        raise KeyFileError(
            f"cannot unlock {path}: the passphrase is wrong or the file is damaged"
        ) from exc
