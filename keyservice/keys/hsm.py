"""The PKCS#11 root key provider: AES-256 keys inside an HSM token, used there and never out.

    wrapped = version (u32, big-endian) || nonce (12 random bytes) || AES-256-GCM ciphertext
    aad     = "carevault/root/v1" || version (u32, big-endian) || context

the layout of the local keyring (keys/keyring.py), computed by the token (``CKM_AES_GCM``).
Each version is a secret key object on the token with the configured label (``CKA_LABEL``)
and the version as its id (``CKA_ID``, u32 big-endian); the highest is current. ``rotate``
generates the next one inside the token (sensitive, never extractable). Every wrap is one
``C_Encrypt``, every unwrap one ``C_Decrypt``; the token's key handles are kept, no key bytes.
One session per provider, used by one thread at a time (a PKCS#11 session holds one operation).
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from typing import Any

from keyservice.errors import InsecureKeyFileError, KeyUnwrapError, RootKeyError
from keyservice.keys.keyring import NONCE_SIZE, ROOT_LABEL, TAG_SIZE
from keyservice.keys.root import generate_key

SETTING = "CAREVAULT_ROOT_KEY"
KEY_BITS = 256
MAX_PIN_FILE_SIZE = 1024
_VERSION = struct.Struct(">I")


def read_pin_file(path: Path) -> str:
    """The PIN in ``path`` (one line); refused if group or others can access the file."""
    try:
        info = path.stat()
        if info.st_mode & 0o077:
            raise InsecureKeyFileError(
                f"the PKCS#11 PIN file {path} (CAREVAULT_PKCS11_PIN_FILE) is open to group or "
                f"others: run chmod 600 {path}"
            )
        with path.open("rb") as file:
            data = file.read(MAX_PIN_FILE_SIZE + 1)
    except OSError as exc:
        raise RootKeyError(
            f"cannot read the PKCS#11 PIN file {path} (CAREVAULT_PKCS11_PIN_FILE): {exc.strerror}"
        ) from exc
    pin = data.decode(errors="replace").strip()
    if not pin or len(data) > MAX_PIN_FILE_SIZE:
        raise RootKeyError(f"the PKCS#11 PIN file {path} (CAREVAULT_PKCS11_PIN_FILE) holds no PIN")
    return pin


class Pkcs11RootKeyProvider:
    """Root key versions labelled ``key_label`` on the token labelled ``token_label`` of the
    PKCS#11 module at ``module``; refuses to open without such a key."""

    def __init__(self, *, module: Path, token_label: str, key_label: str, pin: str) -> None:
        import pkcs11
        from pkcs11.exceptions import NoSuchToken, PKCS11Error, UserAlreadyLoggedIn

        self._where = f"{SETTING}=pkcs11:token={token_label};object={key_label}"
        self._label = key_label
        self._token_label = token_label
        self._lock = threading.Lock()
        try:
            token = pkcs11.lib(str(module)).get_token(token_label=token_label)
        except NoSuchToken as exc:
            raise RootKeyError(
                f"{self._where}: no token labelled {token_label!r} in {module} "
                "(CAREVAULT_PKCS11_MODULE)"
            ) from exc
        except PKCS11Error as exc:
            raise RootKeyError(
                f"{self._where}: cannot load the PKCS#11 module {module} "
                f"(CAREVAULT_PKCS11_MODULE): {type(exc).__name__}"
            ) from exc
        try:
            try:
                self._session: Any = token.open(user_pin=pin, rw=True)
            except UserAlreadyLoggedIn:
                # Logins are per process: another provider here has logged in to this token.
                self._session = token.open(rw=True)
        except PKCS11Error as exc:
            # Never the PIN itself.
            raise RootKeyError(
                f"{self._where}: cannot log in to the token ({type(exc).__name__}): check the "
                "PIN (CAREVAULT_PKCS11_PIN_FILE or CAREVAULT_PKCS11_PIN)"
            ) from exc
        self._keys: dict[int, Any] = self._find_keys()
        if not self._keys:
            raise RootKeyError(
                f"{self._where}: the token holds no AES-256 secret key labelled {key_label!r} "
                "with a 4-byte id: create one inside the token, e.g. pkcs11-tool --keygen "
                f"--key-type AES:32 --label {key_label} --id 00000001 --sensitive"
            )

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        from pkcs11 import Mechanism, PKCS11Error
        from pkcs11.mechanisms import GCMParams

        with self._lock:
            version = max(self._keys)
            header = _VERSION.pack(version)
            nonce = os.urandom(NONCE_SIZE)
            params = GCMParams(nonce, ROOT_LABEL + header + context)
            try:
                sealed = self._keys[version].encrypt(
                    plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            except PKCS11Error as exc:
                raise RootKeyError(
                    f"{self._where}: the token refused to encrypt ({type(exc).__name__})"
                ) from exc
        return header + nonce + bytes(sealed)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        from pkcs11 import Mechanism, PKCS11Error
        from pkcs11.mechanisms import GCMParams

        if len(wrapped) < _VERSION.size + NONCE_SIZE + TAG_SIZE:
            raise KeyUnwrapError()
        header = wrapped[: _VERSION.size]
        (version,) = _VERSION.unpack(header)
        nonce = wrapped[_VERSION.size : _VERSION.size + NONCE_SIZE]
        with self._lock:
            if version not in self._keys:
                # Another instance may have rotated since this one opened.
                self._keys = self._find_keys()
            key = self._keys.get(version)
            if key is None:
                raise KeyUnwrapError()
            params = GCMParams(nonce, ROOT_LABEL + header + context)
            try:
                plaintext = key.decrypt(
                    wrapped[_VERSION.size + NONCE_SIZE :],
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=params,
                )
            except PKCS11Error as exc:
                raise KeyUnwrapError() from exc
        return bytes(plaintext)

    def rewrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return self.wrap(self.unwrap(wrapped, context=context), context=context)

    def generate(self, *, context: bytes) -> tuple[bytes, bytes]:
        key = generate_key()
        return key, self.wrap(key, context=context)

    def identity(self) -> str:
        return f"pkcs11:{self._token_label}/{self._label}"

    def current_version(self) -> int:
        with self._lock:
            return max(self._keys)

    def rotate(self) -> int:
        """Generate the next version inside the token; it never leaves it."""
        from pkcs11 import Attribute, KeyType, PKCS11Error

        with self._lock:
            self._keys = self._find_keys()
            version = max(self._keys) + 1
            try:
                self._keys[version] = self._session.generate_key(
                    KeyType.AES,
                    KEY_BITS,
                    label=self._label,
                    id=_VERSION.pack(version),
                    store=True,
                    template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
                )
            except PKCS11Error as exc:
                raise RootKeyError(
                    f"{self._where}: the token refused to generate a key ({type(exc).__name__})"
                ) from exc
            return version

    def _find_keys(self) -> dict[int, Any]:
        from pkcs11 import Attribute, KeyType, ObjectClass

        found: dict[int, Any] = {}
        for key in self._session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: self._label}
        ):
            key_id = bytes(key.id or b"")
            if (
                key.key_type != KeyType.AES
                or key.key_length != KEY_BITS
                or len(key_id) != _VERSION.size
            ):
                continue
            (version,) = _VERSION.unpack(key_id)
            if version >= 1:
                found[version] = key
        return found
