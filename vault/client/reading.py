"""Reading records, as calls of ``vault.Client``: listings with their metadata decrypted here,
whole versions verified and decrypted to a file, and ranges of a version."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import httpx

from vault import format as fmt
from vault.client import wire
from vault.client.blobs import Download, Progress, check_ciphertext, read_range
from vault.client.models import ListedVersion, RecordInfo
from vault.client.release import KeyReleases, Released
from vault.format import IntegrityError


class RecordReading(KeyReleases):
    """Mixed into ``Client``; every call is signed by the client's device."""

    _blobs: httpx.Client

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
        only when every chunk authenticated and the ciphertext's size and digest equal those
        the key service checked at commit; on an integrity failure nothing is left at the
        target and ``vault.format.IntegrityError`` is raised. Returns the path written.
        """
        # A small version comes back with its key (decision 0030): one request in all.
        released = self._release_one(record_id, version, include_url=True, include_ciphertext=True)
        target = dst
        if dst.is_dir():
            metadata = self._open_metadata(released)
            target = dst / (metadata.file_name or record_id)
        self._decrypt_to(released, target, progress)
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

        Unlike ``get``, a range read cannot check the ciphertext's committed digest, which
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

    def _decrypt_to(
        self,
        released: Released,
        target: Path,
        progress: Progress | None,
        *,
        tee: Callable[[bytes], object] | None = None,
    ) -> None:
        """Download, verify and decrypt ``released`` into the file ``target``, through a
        temporary file renamed into place once everything verified. ``tee`` sees each block
        of plaintext as it is written (views of reused buffers: use them at once)."""
        expected = self._committed(released)
        if released.inline is not None:
            # Held to the committed size and digest before a byte of it is decrypted.
            check_ciphertext(released.inline, expected)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
        tmp = Path(tmp_name)
        try:
            if released.inline is not None:
                with os.fdopen(fd, "wb") as out:
                    src = io.BytesIO(released.inline)
                    fmt.decrypt(
                        record_key=released.record_key,
                        attributes=released.attributes,
                        src=src,
                        dst=out if tee is None else cast(BinaryIO, _Tee(out, tee)),
                    )
                    if src.read(1):
                        raise IntegrityError() from ValueError("bytes follow the end of the record")
                if progress is not None:
                    progress(len(released.inline))
            else:
                with (
                    os.fdopen(fd, "wb") as out,
                    Download(self._blobs, self._url(released), progress, expected=expected) as dl,
                ):
                    fmt.decrypt(
                        record_key=released.record_key,
                        attributes=released.attributes,
                        src=dl.stream,
                        dst=out if tee is None else cast(BinaryIO, _Tee(out, tee)),
                    )
                    dl.verify()
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


class _Tee:
    """A writable stream that hands every block written to ``dst`` to ``seen`` as well."""

    def __init__(self, dst: BinaryIO, seen: Callable[[bytes], object]) -> None:
        self._dst = dst
        self._seen = seen

    def write(self, data: bytes) -> int:
        self._seen(data)
        return self._dst.write(data)


class _BytesSink:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def value(self) -> bytes:
        return b"".join(self._parts)
