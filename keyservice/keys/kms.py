"""The AWS KMS root key provider: the root key is a symmetric KMS key that never leaves the KMS.

    wrapped            = version (u32, big-endian) || KMS CiphertextBlob
    encryption context = {"carevault": "root/v1", "root_version": "<version>",
                          "child_id": "<id>", "child_key_version": "<n>"}  (a child key's wrap)
                       | {"carevault": "root/v1", "root_version": "<version>",
                          "context": "<hex of the context bytes>"}          (any other context)

Every wrap is one ``Encrypt``, every new key one ``GenerateDataKey``, every unwrap one
``Decrypt`` (naming the key, so a ciphertext of another key is refused), every rewrap one
``ReEncrypt``: the KMS never returns the root key, and a child key's plaintext crosses the
network only inside a KMS call's TLS. The encryption context is logged by the KMS in clear
(CloudTrail): it holds opaque ids only.

The version is 1 + the key's rotations as the KMS lists them (``ListKeyRotations``) when the
provider opens; ``rotate`` asks the KMS for an on-demand rotation. The KMS picks the key
material from the ciphertext itself, so the version labels wraps for the service's bookkeeping
and is bound into the encryption context; a wrap naming a newer version than this instance has
seen (another instance rotated) makes it list the rotations again.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from keyservice.errors import KeyUnwrapError, RootKeyError
from keyservice.keys.hierarchy import parse_child_key_context
from keyservice.keys.root import KEY_SIZE

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

SETTING = "CAREVAULT_ROOT_KEY"
_VERSION = struct.Struct(">I")
# Refusals of the ciphertext or its context: the wrap does not open, whoever asks.
_REFUSED = frozenset(
    {"InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"}
)
# A start or a request waits this long for an unreachable KMS, not botocore's minutes.
_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})


def encryption_context(context: bytes, *, version: int) -> dict[str, str]:
    """The KMS encryption context for a wrap under root ``version`` bound to ``context``."""
    fields = {"carevault": "root/v1", "root_version": str(version)}
    child = parse_child_key_context(context)
    if child is None:
        return {**fields, "context": context.hex()}
    return {**fields, "child_id": child[0], "child_key_version": str(child[1])}


class KmsRootKeyProvider:
    """Wraps with the symmetric KMS key ``key_id`` (id, ARN or alias); refuses to open on a
    key that is missing, not enabled or not a symmetric encryption key."""

    def __init__(
        self,
        key_id: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self._key_id = key_id
        self._where = f"{SETTING}=kms:{key_id}"
        self._lock = threading.Lock()
        try:
            self._kms: KMSClient = boto3.client(
                "kms", region_name=region, endpoint_url=endpoint_url, config=_CONFIG
            )
            metadata = self._kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise RootKeyError(
                f"{self._where}: the KMS refused to describe the key ({code}): check the key "
                "id, the region (CAREVAULT_KMS_REGION) and the credentials' kms:DescribeKey"
            ) from exc
        except BotoCoreError as exc:
            raise RootKeyError(
                f"{self._where}: the KMS cannot be reached ({type(exc).__name__}): check "
                "CAREVAULT_KMS_ENDPOINT_URL, CAREVAULT_KMS_REGION and the network"
            ) from exc
        state = metadata.get("KeyState", "Unknown")
        if state != "Enabled":
            raise RootKeyError(
                f"{self._where}: the key is {state}, not Enabled: enable it (or cancel its "
                "deletion), or point the setting at an enabled key"
            )
        # SYMMETRIC_DEFAULT keys are always ENCRYPT_DECRYPT keys.
        if metadata.get("KeySpec") != "SYMMETRIC_DEFAULT":
            raise RootKeyError(
                f"{self._where}: the key is not a symmetric encryption key "
                "(KeySpec SYMMETRIC_DEFAULT)"
            )
        self._version = self._listed_version()

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        version = self._version
        try:
            blob = self._kms.encrypt(
                KeyId=self._key_id,
                Plaintext=plaintext,
                EncryptionContext=encryption_context(context, version=version),
            )["CiphertextBlob"]
        except (ClientError, BotoCoreError) as exc:
            raise self._unusable("Encrypt", exc) from exc
        return _VERSION.pack(version) + blob

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        version, blob = self._split(wrapped)
        try:
            plaintext = self._kms.decrypt(
                KeyId=self._key_id,
                CiphertextBlob=blob,
                EncryptionContext=encryption_context(context, version=version),
            )["Plaintext"]
        except ClientError as exc:
            raise self._refused_or_unusable("Decrypt", exc) from exc
        except BotoCoreError as exc:
            raise self._unusable("Decrypt", exc) from exc
        return plaintext

    def rewrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        version, blob = self._split(wrapped)
        current = self._version
        try:
            fresh = self._kms.re_encrypt(
                CiphertextBlob=blob,
                SourceKeyId=self._key_id,
                SourceEncryptionContext=encryption_context(context, version=version),
                DestinationKeyId=self._key_id,
                DestinationEncryptionContext=encryption_context(context, version=current),
            )["CiphertextBlob"]
        except ClientError as exc:
            raise self._refused_or_unusable("ReEncrypt", exc) from exc
        except BotoCoreError as exc:
            raise self._unusable("ReEncrypt", exc) from exc
        return _VERSION.pack(current) + fresh

    def generate(self, *, context: bytes) -> tuple[bytes, bytes]:
        """A new key and its wrap in one ``GenerateDataKey`` call."""
        version = self._version
        try:
            answer = self._kms.generate_data_key(
                KeyId=self._key_id,
                NumberOfBytes=KEY_SIZE,
                EncryptionContext=encryption_context(context, version=version),
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._unusable("GenerateDataKey", exc) from exc
        return answer["Plaintext"], _VERSION.pack(version) + answer["CiphertextBlob"]

    def identity(self) -> str:
        return f"kms:{self._key_id}"

    def current_version(self) -> int:
        return self._version

    def rotate(self) -> int:
        """New key material in the KMS (an on-demand rotation: AWS allows ten per key)."""
        try:
            self._kms.rotate_key_on_demand(KeyId=self._key_id)
        except (ClientError, BotoCoreError) as exc:
            raise self._unusable("RotateKeyOnDemand", exc) from exc
        with self._lock:
            # The KMS may list the rotation a little later; the count moves on by one here.
            self._version = max(self._version + 1, self._listed_version())
            return self._version

    def _split(self, wrapped: bytes) -> tuple[int, bytes]:
        if len(wrapped) <= _VERSION.size:
            raise KeyUnwrapError()
        (version,) = _VERSION.unpack_from(wrapped)
        if version > self._version:
            # Another instance may have rotated since this one opened.
            with self._lock:
                self._version = max(self._version, self._listed_version())
        if not 1 <= version <= self._version:
            raise KeyUnwrapError()
        return version, wrapped[_VERSION.size :]

    def _listed_version(self) -> int:
        rotations = 0
        marker: str | None = None
        try:
            while True:
                page = (
                    self._kms.list_key_rotations(KeyId=self._key_id, Marker=marker)
                    if marker
                    else self._kms.list_key_rotations(KeyId=self._key_id)
                )
                rotations += len(page.get("Rotations", []))
                marker = page.get("NextMarker") if page.get("Truncated") else None
                if not marker:
                    return 1 + rotations
        except (ClientError, BotoCoreError) as exc:
            raise self._unusable("ListKeyRotations", exc) from exc

    def _refused_or_unusable(self, call: str, exc: ClientError) -> Exception:
        if exc.response.get("Error", {}).get("Code") in _REFUSED:
            return KeyUnwrapError()
        return self._unusable(call, exc)

    def _unusable(self, call: str, exc: Exception) -> RootKeyError:
        cause = (
            exc.response.get("Error", {}).get("Code", "error")
            if isinstance(exc, ClientError)
            else type(exc).__name__
        )
        return RootKeyError(f"{self._where}: {call} failed ({cause}); the KMS key is unusable")
