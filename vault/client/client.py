"""``vault.Client``: what a staff member, guardian, agency or admin does, as typed methods.

    client, identity = Client.enrol("https://vault.example.org", code, "office laptop")
    save_identity(path, identity, passphrase)            # later: Client(load_identity(...))
    ref = client.put(child_ids=[child], category="observation", path=Path("note.txt"))
    client.get(ref.record_id, dst=Path("note.txt"))

Records are encrypted and decrypted here, on this device; the key service only hands out
record keys sealed to this device and short-lived storage URLs.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import httpx

from vault import format as fmt
from vault.client import admin, approvals, devices, wire
from vault.client.blobs import (
    SMALL_CIPHERTEXT_SIZE,
    Download,
    InMemory,
    PartMd5s,
    Progress,
    UploadedPart,
    new_blob_client,
    read_range,
    upload,
)
from vault.client.identity import DeviceIdentity, DeviceKeys, b64encode
from vault.client.models import (
    Child,
    Disclosure,
    ExpectedCiphertext,
    ListedVersion,
    Me,
    RecordInfo,
    RecordRef,
    SealedKey,
    SingleUpload,
    UploadPlan,
)
from vault.client.pipe import PipeProducer
from vault.client.transport import KeyServiceTransport
from vault.errors import KeyServiceError, NotFound, RecordUnavailable, UploadError
from vault.sealing import BatchOpener
from vault.signing import sealing_context

MAX_RELEASE_BATCH = 1000
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class _Released:
    """A record key this device opened, with what came with it.

    ``ciphertext`` is the committed size and digest a release carries; a new version's key,
    handed out before anything was uploaded, has none.
    """

    attributes: fmt.RecordAttributes
    record_key: bytes = field(repr=False)
    download_url: str | None
    encrypted_metadata: bytes | None
    ciphertext: ExpectedCiphertext | None = None


class Client(admin.AdminCalls, approvals.ApprovalCalls, devices.DeviceCalls):
    """One enrolled device talking to one key service.

    ``transport`` is the httpx transport to the key service, ``blob_client`` the httpx client
    for storage URLs, ``clock`` the Unix-seconds clock requests are signed with.
    """

    def __init__(
        self,
        identity: DeviceIdentity,
        *,
        transport: httpx.BaseTransport | None = None,
        blob_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._api = KeyServiceTransport.for_device(
            identity.service_url,
            device_id=identity.device_id,
            signing_key=identity.keys.signing_key,
            audience=identity.audience,
            clock=clock,
            transport=transport,
        )
        self._owns_blob_client = blob_client is None
        self._blobs = blob_client or new_blob_client()

    # --- lifecycle -----------------------------------------------------------------------

    @classmethod
    def enrol(
        cls,
        base_url: str,
        code: str,
        device_name: str,
        *,
        transport: httpx.BaseTransport | None = None,
        blob_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> tuple[Client, DeviceIdentity]:
        """Register a new device with a one-time code; its private keys never leave it."""
        keys = DeviceKeys.generate()
        unsigned = KeyServiceTransport(base_url, signer=None, transport=transport)
        try:
            answer = unsigned.post(
                "/v1/enrol",
                wire.enrolled,
                {
                    "code": code,
                    "device_name": device_name,
                    "signing_key": b64encode(keys.signing_public()),
                    "receiving_key": b64encode(keys.receiving_public()),
                },
            )
        finally:
            unsigned.close()
        identity = DeviceIdentity(
            service_url=unsigned.base_url,
            principal_id=answer.principal_id,
            device_id=answer.device_id,
            audience=answer.audience,
            keys=keys,
        )
        client = cls(identity, transport=transport, blob_client=blob_client, clock=clock)
        return client, identity

    def close(self) -> None:
        self._api.close()
        if self._owns_blob_client:
            self._blobs.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- who and whom ---------------------------------------------------------------------

    def whoami(self) -> Me:
        return self._api.get("/v1/me", wire.me)

    def children(self) -> list[Child]:
        """The children this principal has a current relationship with."""
        return self._api.get("/v1/children", wire.children)

    # --- reading --------------------------------------------------------------------------

    def records(self, child_id: str) -> list[RecordInfo]:
        """The latest version of each record of the child that this principal may read."""
        return self._with_metadata(
            self._api.get(f"/v1/children/{child_id}/records", wire.listed_versions)
        )

    def history(self, record_id: str) -> list[RecordInfo]:
        """Every version of a record, oldest first."""
        listed = self._api.get(f"/v1/records/{record_id}/versions", wire.listed_versions)
        return sorted(self._with_metadata(listed), key=lambda info: info.version)

    def get(
        self,
        record_id: str,
        *,
        dst: Path,
        version: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Download, verify and decrypt a record version to ``dst`` (a file or a directory).

        The plaintext is written to a temporary file next to the target and renamed into place
        only when every chunk authenticated and the ciphertext's size and SHA-256 equal those
        the key service checked at commit; on an integrity failure nothing is left at the
        target and ``vault.format.IntegrityError`` is raised. Returns the path written.
        """
        released = self._release_one(record_id, version, include_url=True)
        url, expected = self._url(released), self._committed(released)
        target = dst
        if dst.is_dir():
            metadata = self._open_metadata(released)
            target = dst / (metadata.file_name or record_id)
        directory = target.parent
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                Download(self._blobs, url, progress, expected=expected) as download,
            ):
                fmt.decrypt(
                    record_key=released.record_key,
                    attributes=released.attributes,
                    src=download.stream,
                    dst=out,
                )
                download.verify()
            # The rename is what guarantees that only verified plaintext appears at the
            # target; no fsync, because a download can simply be fetched again after a crash.
            # An existing target is removed first: ext4 flushes a file renamed over another
            # to disk (auto_da_alloc), which cost a 64 MiB download a fifth of its time.
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def get_range(
        self,
        record_id: str,
        *,
        start: int,
        length: int,
        version: int | None = None,
        dst: BinaryIO | None = None,
    ) -> bytes:
        """Plaintext bytes ``[start, start + length)``, fetching only the chunks they lie in.

        With ``dst`` the bytes are written there as each chunk authenticates and ``b""`` is
        returned; without it they are returned.

        Unlike ``get``, a range read cannot check the ciphertext's committed SHA-256, which
        covers the whole object. What still holds is the format's own authentication: the
        header's MAC and key commitment, and each chunk's tag under a key bound to this
        record's attributes and the chunk's position, so no byte from another record, position
        or altered blob is returned. It cannot notice a blob replaced whole after commit by
        someone who holds this record's key; read the whole record with ``get`` when that
        matters.
        """
        released = self._release_one(record_id, version, include_url=True)
        url = self._url(released)
        sink = _BytesSink() if dst is None else dst

        def read_at(offset: int, size: int) -> bytes:
            return read_range(self._blobs, url, offset, offset + size)

        fmt.decrypt_range(
            record_key=released.record_key,
            attributes=released.attributes,
            read_at=read_at,
            start=start,
            length=length,
            dst=sink,  # type: ignore[arg-type]
        )
        return sink.value() if isinstance(sink, _BytesSink) else b""

    def disclosures(self, child_id: str) -> list[Disclosure]:
        """The disclosure log of a child: who was given which record, when and why."""
        return self._api.get(f"/v1/children/{child_id}/disclosures", wire.disclosures)

    # --- writing --------------------------------------------------------------------------

    def put(
        self,
        *,
        child_ids: Sequence[str],
        category: str,
        path: Path | None = None,
        stream: BinaryIO | None = None,
        file_name: str | None = None,
        content_type: str | None = None,
        withheld_from_guardians: bool = False,
        progress: Progress | None = None,
    ) -> RecordRef:
        """Encrypt and upload a new record from ``path`` or ``stream``; visible once committed."""
        return self._store(
            "/v1/records",
            child_ids=child_ids,
            category=category,
            path=path,
            stream=stream,
            file_name=file_name,
            content_type=content_type,
            withheld_from_guardians=withheld_from_guardians,
            progress=progress,
        )

    def amend(
        self,
        record_id: str,
        *,
        path: Path | None = None,
        stream: BinaryIO | None = None,
        file_name: str | None = None,
        content_type: str | None = None,
        progress: Progress | None = None,
    ) -> RecordRef:
        """Add a new version of a record; earlier versions are kept and listed in history."""
        latest = self.history(record_id)[-1]
        return self._store(
            f"/v1/records/{record_id}/versions",
            child_ids=latest.child_ids,
            category=latest.category,
            path=path,
            stream=stream,
            file_name=file_name if file_name is not None else latest.file_name,
            content_type=content_type or latest.content_type,
            withheld_from_guardians=latest.withheld_from_guardians,
            progress=progress,
        )

    def delete(self, record_id: str) -> None:
        """Crypto-shred every version of a record (its keys are destroyed, then its blobs)."""
        self._api.delete(f"/v1/records/{record_id}")

    # --- internals ------------------------------------------------------------------------

    def _store(
        self,
        endpoint: str,
        *,
        child_ids: Sequence[str],
        category: str,
        path: Path | None,
        stream: BinaryIO | None,
        file_name: str | None,
        content_type: str | None,
        withheld_from_guardians: bool,
        progress: Progress | None,
    ) -> RecordRef:
        if (path is None) == (stream is None):
            raise ValueError("give exactly one of path= or stream=")
        with contextlib.ExitStack() as stack:
            if path is not None:
                src: BinaryIO = stack.enter_context(path.open("rb"))
                name = file_name if file_name is not None else path.name
            else:
                assert stream is not None
                src = _seekable(stream, stack)
                name = file_name or ""
            size = _remaining(src)
            metadata = fmt.Metadata(
                file_name=name,
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                size=size,
            )
            ciphertext_size = fmt.ciphertext_size(metadata, child_count=len(set(child_ids)))
            created = self._api.post_signed(
                endpoint,
                wire.new_version,
                {
                    "child_ids": sorted(child_ids),
                    "category": str(category),
                    "withheld_from_guardians": withheld_from_guardians,
                    "ciphertext_size": ciphertext_size,
                },
            )
            opener = self._opener(created.value.ephemeral_public, created.nonce)
            released = _Released(
                attributes=created.value.key.attributes,
                record_key=self._open_key(opener, created.value.key),
                download_url=None,
                encrypted_metadata=None,
            )
            if sorted(child_ids) != sorted(c.hex() for c in released.attributes.child_ids) or (
                str(category) != released.attributes.category
            ):
                raise KeyServiceError("the key service created a record other than the one asked")

            result, part_md5s, parts = self._encrypt_and_upload(
                created.value.upload,
                released=released,
                metadata=metadata,
                src=src,
                ciphertext_size=ciphertext_size,
                progress=progress,
            )
            if result.ciphertext_size != ciphertext_size:
                raise UploadError("the record changed size while it was being read")
            sealed_metadata = fmt.seal_metadata(
                record_key=released.record_key,
                attributes=released.attributes,
                metadata=metadata,
            )
            record_id = released.attributes.record_id.hex()
            version = released.attributes.version
            commit: dict[str, object] = {
                "ciphertext_size": result.ciphertext_size,
                "ciphertext_sha256": b64encode(result.sha256),
                "encrypted_metadata": b64encode(sealed_metadata),
                "part_md5s": [b64encode(md5) for md5 in part_md5s],
            }
            if parts:
                commit["parts"] = [{"part_number": p.part_number, "etag": p.etag} for p in parts]
            self._api.post(
                f"/v1/records/{record_id}/versions/{version}/commit", wire.nothing, commit
            )
            return RecordRef(record_id=record_id, version=version)

    def _encrypt_and_upload(
        self,
        plan: UploadPlan,
        *,
        released: _Released,
        metadata: fmt.Metadata,
        src: BinaryIO,
        ciphertext_size: int,
        progress: Progress | None,
    ) -> tuple[fmt.EncryptResult, list[bytes], list[UploadedPart]]:
        """Encrypt ``src`` and upload the ciphertext as ``plan`` says; return what the commit
        names: the size and SHA-256, the MD5 of each uploaded piece, and the parts."""

        # A small ciphertext is encrypted in memory on this thread and sent in one request;
        # anything else streams through a pipe, encrypting while it uploads and hashing the
        # MD5s on a thread of their own.
        small = ciphertext_size <= SMALL_CIPHERTEXT_SIZE and isinstance(plan, SingleUpload)

        def encrypt(dst: BinaryIO) -> tuple[fmt.EncryptResult, list[bytes]]:
            md5s = PartMd5s(dst, plan.piece_size(ciphertext_size), threaded=not small)
            try:
                result = fmt.encrypt(
                    record_key=released.record_key,
                    attributes=released.attributes,
                    metadata=metadata,
                    src=src,
                    dst=cast(BinaryIO, md5s),
                )
                return result, md5s.md5s()
            finally:
                md5s.close()

        if small:
            buffer = io.BytesIO()
            result, part_md5s = encrypt(buffer)
            source = InMemory(buffer.getvalue())
            parts = upload(
                self._blobs, plan, size=ciphertext_size, source=source, progress=progress
            )
            return result, part_md5s, parts
        pipe: PipeProducer[tuple[fmt.EncryptResult, list[bytes]]] = PipeProducer(encrypt)
        try:
            parts = upload(self._blobs, plan, size=ciphertext_size, source=pipe, progress=progress)
            result, part_md5s = pipe.result()
        finally:
            pipe.close()
        return result, part_md5s, parts

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
        self, items: Iterable[tuple[str, int]], *, include_urls: bool
    ) -> dict[tuple[str, int], _Released]:
        """Release keys in batches; denied items are simply absent from the answer."""
        wanted = list(items)
        opened: dict[tuple[str, int], _Released] = {}
        for at in range(0, len(wanted), MAX_RELEASE_BATCH):
            batch = wanted[at : at + MAX_RELEASE_BATCH]
            answer = self._api.post_signed(
                "/v1/keys/release",
                wire.release,
                {
                    "items": [{"record_id": r, "version": v} for r, v in batch],
                    "include_urls": include_urls,
                },
            )
            opener = self._opener(answer.value.ephemeral_public, answer.nonce)
            for granted in answer.value.granted:
                attributes = granted.key.attributes
                key = (attributes.record_id.hex(), attributes.version)
                if key not in batch:
                    raise KeyServiceError("the key service released a record that was not asked")
                opened[key] = _Released(
                    attributes=attributes,
                    record_key=self._open_key(opener, granted.key),
                    download_url=granted.download_url,
                    encrypted_metadata=granted.encrypted_metadata,
                    ciphertext=granted.ciphertext,
                )
        return opened

    def _release_one(self, record_id: str, version: int | None, *, include_url: bool) -> _Released:
        if version is None:
            version = self._latest_version(record_id)
        released = self._release([(record_id, version)], include_urls=include_url)
        if (record_id, version) not in released:
            raise RecordUnavailable(record_id, version)
        return released[(record_id, version)]

    def _latest_version(self, record_id: str) -> int:
        # The service answers 404 alike for a missing record and one this principal may not
        # read; both are "unavailable" to the caller, as a denied release is.
        try:
            listed = self._api.get(f"/v1/records/{record_id}/versions", wire.listed_versions)
        except NotFound as exc:
            raise RecordUnavailable(record_id) from exc
        if not listed:
            raise RecordUnavailable(record_id)
        return max(item.version for item in listed)

    def _open_metadata(self, released: _Released) -> fmt.Metadata:
        if released.encrypted_metadata is None:
            raise KeyServiceError("the key service sent no metadata with the record key")
        return fmt.open_metadata(
            record_key=released.record_key,
            attributes=released.attributes,
            sealed=released.encrypted_metadata,
        )

    @staticmethod
    def _committed(released: _Released) -> ExpectedCiphertext:
        if released.ciphertext is None:
            raise KeyServiceError("the key service sent no ciphertext digest with the record key")
        return released.ciphertext

    @staticmethod
    def _url(released: _Released) -> str:
        if not released.download_url:
            raise KeyServiceError("the key service sent no download URL with the record key")
        return released.download_url

    def _with_metadata(self, listed: list[ListedVersion]) -> list[RecordInfo]:
        keys = self._release(
            ((item.record_id, item.version) for item in listed), include_urls=False
        )
        infos = []
        for item in listed:
            released = keys.get((item.record_id, item.version))
            if released is None:
                continue
            metadata = fmt.open_metadata(
                record_key=released.record_key,
                attributes=released.attributes,
                sealed=item.encrypted_metadata,
            )
            infos.append(
                RecordInfo(
                    record_id=item.record_id,
                    version=item.version,
                    category=item.category,
                    child_ids=item.child_ids,
                    withheld_from_guardians=item.withheld_from_guardians,
                    created_at=item.created_at,
                    created_by=item.created_by,
                    file_name=metadata.file_name,
                    content_type=metadata.content_type,
                    size=metadata.size,
                )
            )
        return infos


class _BytesSink:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def value(self) -> bytes:
        return b"".join(self._parts)


def _remaining(stream: BinaryIO) -> int:
    here = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    stream.seek(here)
    return end - here


def _seekable(stream: BinaryIO, stack: contextlib.ExitStack) -> BinaryIO:
    """The stream itself if its size can be known, else a spooled copy on disk."""
    if stream.seekable():
        return stream
    spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by stack
    shutil.copyfileobj(stream, spool, 1 << 20)
    spool.seek(0)
    return spool
