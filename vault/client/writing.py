"""Writing records, as calls of ``vault.Client``: a new record or version is encrypted here
while it uploads straight to storage, and becomes visible only when the key service has
checked the stored ciphertext at commit; a record is deleted by crypto-shredding it.

A ciphertext of at most ``INLINE_CIPHERTEXT_MAX`` bytes is not uploaded: its commit carries
it, and the key service hashes and stores it (decision 0030), so a small record is two
signed requests (create, commit) and nothing else."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

from vault import format as fmt
from vault.client import wire
from vault.client.blobs import (
    SMALL_CIPHERTEXT_SIZE,
    InMemory,
    PartMd5s,
    Progress,
    UploadedPart,
    upload,
)
from vault.client.identity import b64encode
from vault.client.models import RecordRef, SingleUpload, UploadPlan
from vault.client.pipe import PipeProducer
from vault.client.reading import RecordReading
from vault.client.release import Released
from vault.errors import KeyServiceError, UploadError

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# The same constant as the key service's (keyservice/catalog/uploads.py; decision 0030).
INLINE_CIPHERTEXT_MAX = 256 * 1024


class RecordWriting(RecordReading):
    """Mixed into ``Client``; every call is signed by the client's device. A new version of a
    record takes its attributes from the latest one (``RecordReading.history``)."""

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
            released, plan = self._new_version(
                endpoint,
                child_ids=child_ids,
                category=category,
                withheld_from_guardians=withheld_from_guardians,
                ciphertext_size=ciphertext_size,
            )
            if ciphertext_size <= INLINE_CIPHERTEXT_MAX and isinstance(plan, SingleUpload):
                buffer = io.BytesIO()
                result = fmt.encrypt(
                    record_key=released.record_key,
                    attributes=released.attributes,
                    metadata=metadata,
                    src=src,
                    dst=buffer,
                )
                if result.ciphertext_size != ciphertext_size:
                    raise UploadError("the record changed size while it was being read")
                ref = self._commit(released, metadata, result, [], [], inline=buffer.getvalue())
                if progress is not None:
                    progress(ciphertext_size)
                return ref
            result, part_md5s, parts = self._encrypt_and_upload(
                plan,
                released=released,
                metadata=metadata,
                src=src,
                ciphertext_size=ciphertext_size,
                progress=progress,
            )
            if result.ciphertext_size != ciphertext_size:
                raise UploadError("the record changed size while it was being read")
            return self._commit(released, metadata, result, part_md5s, parts)

    def _new_version(
        self,
        endpoint: str,
        *,
        child_ids: Sequence[str],
        category: str,
        withheld_from_guardians: bool,
        ciphertext_size: int,
    ) -> tuple[Released, UploadPlan]:
        """Ask for a new record version: its key, opened here, and where to upload it."""
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
        key = created.value.key
        if sorted(child_ids) != sorted(c.hex() for c in key.attributes.child_ids) or (
            str(category) != key.attributes.category
        ):
            raise KeyServiceError("the key service created a record other than the one asked")
        opener = self._opener(created.value.ephemeral_public, created.nonce)
        released = Released(
            attributes=key.attributes,
            record_key=self._open_key(opener, key),
            download_url=None,
            encrypted_metadata=None,
        )
        return released, created.value.upload

    def _commit(
        self,
        released: Released,
        metadata: fmt.Metadata,
        result: fmt.EncryptResult,
        part_md5s: list[bytes],
        parts: list[UploadedPart],
        *,
        inline: bytes | None = None,
    ) -> RecordRef:
        """Commit an uploaded version with what the key service checks of the stored bytes,
        and its metadata sealed under its key; it is visible from then on."""
        sealed_metadata = fmt.seal_metadata(
            record_key=released.record_key, attributes=released.attributes, metadata=metadata
        )
        record_id = released.attributes.record_id.hex()
        version = released.attributes.version
        commit: dict[str, object] = {
            "ciphertext_size": result.ciphertext_size,
            "ciphertext_digest_alg": result.digest.alg,
            "ciphertext_digest": b64encode(result.digest.value),
            "encrypted_metadata": b64encode(sealed_metadata),
            "part_md5s": [b64encode(md5) for md5 in part_md5s],
        }
        if inline is not None:
            commit["ciphertext"] = b64encode(inline)
        if parts:
            commit["parts"] = [{"part_number": p.part_number, "etag": p.etag} for p in parts]
        self._api.post(f"/v1/records/{record_id}/versions/{version}/commit", wire.nothing, commit)
        return RecordRef(record_id=record_id, version=version)

    def _encrypt_and_upload(
        self,
        plan: UploadPlan,
        *,
        released: Released,
        metadata: fmt.Metadata,
        src: BinaryIO,
        ciphertext_size: int,
        progress: Progress | None,
    ) -> tuple[fmt.EncryptResult, list[bytes], list[UploadedPart]]:
        """Encrypt ``src`` and upload the ciphertext as ``plan`` says; return what the commit
        names: the size and digest, the MD5 of each uploaded piece, and the parts."""

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
