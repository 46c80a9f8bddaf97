"""Record keys released to this device: asked for in batches, opened here, and checked
against what was asked.

A key comes back sealed to this device's X25519 key under the nonce of the request that asked
for it (docs/API.md), so an answer replayed to another request does not open.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from vault import format as fmt
from vault.client import wire
from vault.client.identity import DeviceIdentity
from vault.client.models import ExpectedCiphertext, Release, SealedKey
from vault.client.transport import KeyServiceTransport, Signed
from vault.errors import KeyServiceError, RecordUnavailable
from vault.sealing import BatchOpener
from vault.signing import sealing_context

MAX_RELEASE_BATCH = 1000


@dataclass(frozen=True)
class Released:
    """A record key this device opened, with what came with it.

    ``ciphertext`` is the committed size and digest a release carries; a new version's key,
    handed out before anything was uploaded, has none.
    """

    attributes: fmt.RecordAttributes
    record_key: bytes = field(repr=False)
    download_url: str | None
    encrypted_metadata: bytes | None
    ciphertext: ExpectedCiphertext | None = None
    # A small version's ciphertext, answered with its key (decision 0030); unchecked until
    # ``vault.client.blobs.check_ciphertext`` held it to ``ciphertext``.
    inline: bytes | None = field(default=None, repr=False)


class KeyReleases:
    """Mixed into ``Client`` (through its record calls): releasing and opening record keys."""

    identity: DeviceIdentity
    _api: KeyServiceTransport

    def _opener(self, ephemeral_public: bytes, nonce: str) -> BatchOpener:
        """Opens the keys of one answer: sealed to this device under that request's nonce."""
        return BatchOpener(
            recipient_private=self.identity.keys.receiving_key,
            ephemeral_public=ephemeral_public,
            context=sealing_context(self.identity.device_id, nonce),
        )

    @staticmethod
    def _open_key(opener: BatchOpener, key: SealedKey) -> bytes:
        return opener.open(key.sealed, aad=key.attributes.canonical())

    def _release(
        self,
        items: Iterable[tuple[str, int | None]],
        *,
        include_urls: bool,
        through_share: str | None = None,
        include_ciphertext: bool = False,
    ) -> dict[tuple[str, int], Released]:
        """Release keys in batches; denied items are simply absent from the answer. A version
        of None asks for the record's latest committed version, in the same request.
        ``through_share``: an outside recipient's release through that share only (counted
        against it and attributed to it)."""
        wanted = list(items)
        opened: dict[tuple[str, int], Released] = {}
        for at in range(0, len(wanted), MAX_RELEASE_BATCH):
            batch = wanted[at : at + MAX_RELEASE_BATCH]
            asked = set(batch)
            latest = {record_id for record_id, version in batch if version is None}
            answer = self._api.post_signed(
                "/v1/keys/release",
                wire.release,
                {
                    "items": [
                        {"record_id": r} if v is None else {"record_id": r, "version": v}
                        for r, v in batch
                    ],
                    "include_urls": include_urls,
                    **({"include_ciphertext": True} if include_ciphertext else {}),
                    **({"share_id": through_share} if through_share is not None else {}),
                },
            )
            opened.update(self._opened(answer, asked=asked, latest=latest))
        return opened

    def _opened(
        self,
        answer: Signed[Release],
        *,
        asked: Collection[tuple[str, int | None]],
        latest: Collection[str] = (),
    ) -> dict[tuple[str, int], Released]:
        """The keys of one release answer, opened; a key of a version not ``asked`` (nor of
        a record whose ``latest`` version was) is refused as the key service's error."""
        opener = self._opener(answer.value.ephemeral_public, answer.nonce)
        opened: dict[tuple[str, int], Released] = {}
        for granted in answer.value.granted:
            attributes = granted.key.attributes
            key = (attributes.record_id.hex(), attributes.version)
            if key not in asked and key[0] not in latest:
                raise KeyServiceError("the key service released a record that was not asked")
            opened[key] = Released(
                attributes=attributes,
                record_key=self._open_key(opener, granted.key),
                download_url=granted.download_url,
                encrypted_metadata=granted.encrypted_metadata,
                ciphertext=granted.ciphertext,
                inline=granted.inline,
            )
        return opened

    def _release_one(
        self,
        record_id: str,
        version: int | None,
        *,
        include_url: bool,
        include_ciphertext: bool = False,
    ) -> Released:
        """One record's key: the version asked for, or (None) the latest committed one, in one
        signed request either way. A record missing or not the caller's is unavailable."""
        released = self._release(
            [(record_id, version)], include_urls=include_url, include_ciphertext=include_ciphertext
        )
        for (released_id, released_version), found in released.items():
            if released_id == record_id and version in (None, released_version):
                return found
        raise RecordUnavailable(record_id, version)

    def _open_metadata(self, released: Released) -> fmt.Metadata:
        if released.encrypted_metadata is None:
            raise KeyServiceError("the key service sent no metadata with the record key")
        return fmt.open_metadata(
            record_key=released.record_key,
            attributes=released.attributes,
            sealed=released.encrypted_metadata,
        )

    @staticmethod
    def _committed(released: Released) -> ExpectedCiphertext:
        if released.ciphertext is None:
            raise KeyServiceError("the key service sent no ciphertext digest with the record key")
        return released.ciphertext

    @staticmethod
    def _url(released: Released) -> str:
        if not released.download_url:
            raise KeyServiceError("the key service sent no download URL with the record key")
        return released.download_url
