"""Shares to outside recipients, as calls of ``vault.Client``: made by a child's manager or DSL
on a consent or court order, listed and shown to their creator and recipient, revoked with a
reason, downloaded whole by the recipient (``get_share``), and acknowledged by the recipient's
device with a signed receipt of what it received (``ack_share``).

A share is frozen to the record versions current when it was made, so ``get_share`` asks for
each item's own version through the ordinary key release; the key service counts each
release against the share's download cap (a retry by the same device within minutes is not
counted again). It first opens the share (``POST /v1/shares/{id}/open``, one signed round
trip): the answer is the share and the release, through it, of the first items this
directory does not already hold — the items, in order, whose ciphertexts (their sizes are in
the share) add up to at most ``FIRST_BATCH_BYTES``: the whole share when it is small, and one
item at least. Each later release, if any, is of as many items as the downloads so far say
take about ``BATCH_S`` seconds, so that the download URLs a release hands out (valid for
minutes) are still fresh when their item starts. The items a release granted are downloaded
``FETCHERS`` at a time, each taken by the first fetcher free (received, hashed and
decrypted on that thread; hashlib and cryptography release the GIL, so one item's
decryption overlaps another's transfer), and recorded in the share's order. An item not
started within ``FRESH_S`` of its release is asked for again with the rest (within the grace
window: not counted again).

A download directory keeps a manifest, ``.carevault-share-<share id>.json``: for each item
received, its record id and version, the file written, the SHA-256 and size of the plaintext
in it, and the SHA-256 of the ciphertext it came from (``ciphertext_sha256``, hex: the digest
the key service committed, which the download was checked against). A rerun re-hashes each
file the manifest names and skips it only if it still matches, without asking the key service
for its key again; a missing, partial or altered file is fetched again, and so is an item a
manifest written before receipts lists without its ciphertext digest (the field was added to
format 1, which older SDKs read as before). The manifest guards against damage and
interrupted runs, not against someone who rewrites a file and the manifest together: the
plaintext's authenticity is checked when it is received, as for any record.

``ack_share`` acknowledges what the manifest holds: every record version of the share, each
file re-hashed and still matching, with its ciphertext digest, in a receipt signed by this
device (``vault.receipts``). A share with anything not received and checked is refused here,
before any request: a recipient does not sign for what it does not hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from vault import format as fmt
from vault import receipts
from vault.client import wire
from vault.client.identity import b64encode
from vault.client.models import ReceivedItem, Share, ShareDownload, ShareItem, ShareOpening
from vault.client.reading import RecordReading
from vault.client.release import MAX_RELEASE_BATCH, Released
from vault.client.transport import Signed
from vault.errors import KeyServiceError, NotReceived, ShareRefused, VaultError

MANIFEST_FORMAT = 1
_READ_BLOCK = 1 << 20
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# About how long the downloads of one release's items should take, and how long after its
# release an item may still start: well inside the key service's download URLs' 300 s
# (keyservice/api/release.py) and its cap's 10-minute grace window.
BATCH_S = 30.0
FRESH_S = 120.0
# The first release, before any download was timed: as many items as take about BATCH_S at
# 1 MiB/s. A release counts against a cap, so a run interrupted later has spent at most this
# much of it (a rerun within the grace window spends nothing more).
FIRST_BATCH_BYTES = 32 << 20
# Items downloaded at once. Each holds at most a few MiB in memory (vault/client/blobs.py).
FETCHERS = 4


class ShareProgress(Protocol):
    """What ``get_share`` reports while it works (the CLI draws its progress bars from it)."""

    def planned(self, *, fetch: int, skip: int) -> None:
        """How many items will be fetched, and how many are already here and verified."""

    def fetching(self, *, record_id: str, version: int, size: int) -> None:
        """An item starts: ``size`` bytes of ciphertext are to come."""

    def advance(self, count: int) -> None:
        """``count`` more bytes of ciphertext arrived, of any item under way (up to
        ``FETCHERS`` are; calls never overlap)."""


def manifest_path(directory: Path, share_id: str) -> Path:
    return directory / f".carevault-share-{share_id}.json"


class ShareCalls(RecordReading):
    """Mixed into ``Client``; every call is signed by the client's device."""

    def create_share(
        self,
        *,
        recipient_id: str,
        basis: str,
        basis_id: str,
        purpose: str,
        record_ids: Sequence[str] = (),
        categories: Sequence[str] = (),
        valid_to: datetime | None = None,
        download_cap: int | None = None,
        ack_due: datetime | None = None,
    ) -> Share:
        """Share records with one outside recipient, at once (the child's manager or DSL).

        ``basis`` is ``consent`` or ``court_order``, ``basis_id`` the one that names this
        recipient. List the records by id, or the ``categories`` whose records of the basis's
        child to share; each is frozen to its current version. ``valid_to``: default 14 days,
        never past the basis's end. ``download_cap``: downloads allowed per record version.
        ``ack_due``: when the recipient is expected to have acknowledged receipt (after now,
        not after the share's end); past it, unacknowledged, the share is overdue."""
        body = wire.drop_none(
            {
                "recipient_id": recipient_id,
                "basis": basis,
                "basis_id": basis_id,
                "purpose": purpose,
                "record_ids": list(record_ids),
                "categories": list(categories),
                "valid_to": wire.wire_time(valid_to),
                "download_cap": download_cap,
                "ack_due": wire.wire_time(ack_due),
            }
        )
        return self._api.post("/v1/shares", wire.share, body)

    def shares(self) -> list[Share]:
        """The shares this person made and those made for them, newest first."""
        return self._api.get("/v1/shares", wire.shares)

    def overdue_shares(self) -> list[Share]:
        """The shares this person made whose acknowledgement deadline passed without one
        (revoked shares excepted), the most overdue first."""
        return self._api.get("/v1/shares", wire.shares, params={"overdue": "true"})

    def share(self, share_id: str) -> Share:
        """One share, to its creator or its recipient; anyone else: ``NotFound``."""
        return self._api.get(f"/v1/shares/{share_id}", wire.share)

    def revoke_share(self, share_id: str, *, reason: str) -> Share:
        """Revoke a share now (the child's manager or DSL): the recipient's next release is
        refused."""
        return self._api.post(f"/v1/shares/{share_id}/revoke", wire.share, {"reason": reason})

    def get_share(
        self, share_id: str, *, out_dir: Path, progress: ShareProgress | None = None
    ) -> ShareDownload:
        """Download every record of a share into ``out_dir``, each verified and decrypted
        here, at the version the share froze, named by its file name.

        Items already received and still matching the directory's manifest are skipped. An
        item the key service does not release raises ``ShareRefused`` naming it, once the
        items released with it are received; everything received stays written and in the
        manifest, so a rerun resumes."""
        manifest = _Manifest.load(out_dir, share_id)
        # Received before the manifest kept ciphertext digests: fetched again, so that a
        # receipt can list the digest this SDK checked.
        held = {
            pair: kept
            for pair, kept in manifest.all_verified().items()
            if kept.ciphertext_sha256 is not None
        }
        # The manifest's last rewrites are waited for once the items under way are recorded.
        try:
            with _Fetching(manifest) as fetching:
                # The fetching threads start while the share is being opened, not behind the
                # first items handed to them.
                fetching.warm()
                opened = self._open_share(share_id, held=held)
                shared = opened.opening.share
                # Only once the share is known to be the caller's: a refusal writes nothing.
                out_dir.mkdir(parents=True, exist_ok=True)
                skipped: list[ReceivedItem] = []
                wanted: list[ShareItem] = []
                for item in shared.items:
                    kept = held.get((item.record_id, item.version))
                    if kept is None:
                        wanted.append(item)
                    else:
                        skipped.append(kept)
                if progress is not None:
                    progress.planned(fetch=len(wanted), skip=len(skipped))
                if wanted and not shared.active:
                    first = wanted[0]
                    raise ShareRefused(
                        share_id=share_id,
                        record_id=first.record_id,
                        version=first.version,
                        why=f"the share is {shared.state}",
                        kept=len(skipped),
                    )
                first_batch = _FirstBatch.of(opened, wanted)
                fetched = self._receive_all(
                    shared,
                    wanted,
                    manifest,
                    progress,
                    fetching,
                    kept=len(skipped),
                    first=first_batch,
                )
        finally:
            manifest.flush()
        return ShareDownload(
            share_id=share_id,
            directory=out_dir,
            fetched=tuple(fetched),
            skipped=tuple(skipped),
        )

    def _open_share(self, share_id: str, *, held: Mapping[tuple[str, int], object]) -> _Opened:
        """Open the share to download it: the share, and the first items not ``held``
        released through it, in one signed request (``POST /v1/shares/{id}/open``)."""
        asked_at = time.monotonic()
        answer = self._api.post_signed(
            f"/v1/shares/{share_id}/open",
            wire.share_opening,
            {
                "held": [
                    {"record_id": record_id, "version": version}
                    for record_id, version in list(held)[:MAX_RELEASE_BATCH]
                ],
                "first_bytes": FIRST_BATCH_BYTES,
            },
        )
        opening = answer.value
        keys: dict[tuple[str, int], Released] = {}
        if opening.release is not None:
            keys = self._opened(Signed(opening.release, answer.nonce), asked=set(opening.asked))
        return _Opened(opening, keys, asked_at)

    def ack_share(self, share_id: str, *, out_dir: Path) -> Share:
        """Acknowledge, as the share's recipient, what ``get_share`` received into
        ``out_dir``: every record version of the share with the SHA-256 of its ciphertext, in
        a receipt signed by this device. Returns the share, now acknowledged.

        Each file is re-hashed against the manifest first. ``NotReceived`` names what is not
        there or no longer matches, and nothing is sent; the key service refuses a second
        acknowledgement or a revoked share (``Conflict``), and a receipt whose items or
        digests are not exactly the share's (``KeyServiceRequestError``, 422)."""
        shared = self.share(share_id)
        manifest = _Manifest.load(out_dir, share_id)
        held: list[receipts.ReceivedItem] = []
        missing: list[tuple[str, int]] = []
        for item in shared.items:
            kept = manifest.verified(item.record_id, item.version)
            if kept is None or kept.ciphertext_sha256 is None:
                missing.append((item.record_id, item.version))
                continue
            held.append(
                receipts.ReceivedItem(
                    item.record_id, item.version, bytes.fromhex(kept.ciphertext_sha256)
                )
            )
        if missing:
            raise NotReceived(share_id=share_id, directory=str(out_dir), missing=tuple(missing))
        identity = self.identity
        signature = receipts.sign_receipt(
            identity.keys.signing_key,
            share_id=share_id,
            principal_id=identity.principal_id,
            device_id=identity.device_id,
            items=held,
        )
        body = {
            "items": [
                {
                    "record_id": item.record_id,
                    "version": item.version,
                    "ciphertext_sha256": b64encode(item.ciphertext_sha256),
                }
                for item in held
            ],
            "signature": b64encode(signature),
        }
        return self._api.post(f"/v1/shares/{share_id}/ack", wire.share, body)

    def _receive_all(
        self,
        shared: Share,
        wanted: Sequence[ShareItem],
        manifest: _Manifest,
        progress: ShareProgress | None,
        fetching: _Fetching,
        *,
        kept: int,
        first: _FirstBatch | None = None,
    ) -> list[ReceivedItem]:
        """Release the ``wanted`` items' keys in batches (see the module's docstring; the
        ``first`` came with the share) and
        fetch each released item, ``FETCHERS`` at a time. Every item a batch released is
        fetched, even past one it refused (its download was counted); then ``ShareRefused``
        names the first refused, and nothing more is asked for. A failed download raises once
        the others under way are in (each written and recorded, or not written at all)."""
        ticks = _Ticks(progress) if progress is not None else None
        return self._receive_batches(
            shared, list(wanted), manifest, ticks, fetching, kept=kept, first=first
        )

    def _receive_batches(
        self,
        shared: Share,
        queue: list[ShareItem],
        manifest: _Manifest,
        ticks: _Ticks | None,
        fetching: _Fetching,
        *,
        kept: int,
        first: _FirstBatch | None,
    ) -> list[ReceivedItem]:
        size = first.size if first is not None else _first_batch(queue)
        began = time.monotonic()
        while queue:
            batch, queue = queue[:size], queue[size:]
            if first is not None:
                keys, released_at, first = first.keys, first.released_at, None
            else:
                released_at = time.monotonic()
                keys = self._release(
                    [(item.record_id, item.version) for item in batch],
                    include_urls=True,
                    through_share=shared.share_id,
                )
            # Every item released is handed to the fetchers at once: a fetcher that is
            # done takes the next, whichever item before it is still under way.
            refused: ShareItem | None = None
            for at, item in enumerate(batch):
                released = keys.get((item.record_id, item.version))
                if released is None:
                    refused = refused or item
                    continue
                # The first item of a batch starts however late: progress is made.
                fresh_until = None if at == 0 else released_at + FRESH_S
                fetching.submit(item, self._fetch, item, released, manifest, ticks, fresh_until)
            stale = fetching.collect(0)
            if stale:
                # Their URLs may be stale: asked for again, first in the next batch.
                queue = stale + queue
            if refused is not None:
                raise ShareRefused(
                    share_id=shared.share_id,
                    record_id=refused.record_id,
                    version=refused.version,
                    why=self._why_refused(shared.share_id, refused),
                    kept=kept + len(manifest.fetched_now),
                )
            each = (time.monotonic() - began) / max(1, len(fetching.fetched))
            size = max(1, min(MAX_RELEASE_BATCH, int(BATCH_S / each) if each > 0 else size))
        return fetching.fetched

    def _fetch(
        self,
        item: ShareItem,
        released: Released,
        manifest: _Manifest,
        ticks: _Ticks | None,
        fresh_until: float | None,
    ) -> ReceivedItem | None:
        """On a fetching thread: place a released item (its name reserved until it is in),
        announce it and receive it; None, untouched, if it starts after ``fresh_until``."""
        if fresh_until is not None and time.monotonic() > fresh_until:
            return None
        metadata = self._open_metadata(released)
        target = manifest.place(item.record_id, item.version, metadata.file_name)
        try:
            if ticks is not None:
                size = released.ciphertext.size if released.ciphertext is not None else 0
                ticks.fetching(record_id=item.record_id, version=item.version, size=size)
            return self._receive(item, released, target, metadata, ticks)
        except BaseException:
            manifest.unreserve(target)
            raise

    def _receive(
        self,
        item: ShareItem,
        released: Released,
        target: Path,
        metadata: fmt.Metadata,
        ticks: _Ticks | None,
    ) -> ReceivedItem:
        """Fetch one released item into ``target`` (on a fetching thread)."""
        digest = hashlib.sha256()
        written = _Counter()

        def seen(block: bytes) -> None:
            digest.update(block)
            written.count += len(block)

        self._decrypt_to(released, target, None if ticks is None else ticks.advance, tee=seen)
        # The download was checked against this digest before the file was put in place.
        committed = self._committed(released)
        return ReceivedItem(
            record_id=item.record_id,
            version=item.version,
            path=target,
            size=written.count,
            sha256=digest.hexdigest(),
            file_name=metadata.file_name,
            content_type=metadata.content_type,
            ciphertext_sha256=committed.digest.value.hex(),
        )

    def _why_refused(self, share_id: str, item: ShareItem) -> str:
        """What the share's state tells of why an item was refused, as far as it can be seen."""
        unknown = "the share or its consent or court order may have ended"
        try:
            now = self.share(share_id)
        except VaultError:
            return unknown
        if not now.active:
            return f"the share is {now.state}"
        spent = {(i.record_id, i.version) for i in now.items if i.remaining == 0}
        if (item.record_id, item.version) in spent:
            return "its download cap is spent"
        return "the consent or court order the share rests on may have been withdrawn or ended"


@dataclass(frozen=True)
class _Opened:
    """A share opened: the answer, the keys of its release opened, and when it was asked."""

    opening: ShareOpening
    keys: dict[tuple[str, int], Released]
    asked_at: float


@dataclass(frozen=True)
class _FirstBatch:
    """The release that came with the share: its ``size`` first items wanted, and the keys
    it granted of them."""

    size: int
    keys: dict[tuple[str, int], Released]
    released_at: float

    @classmethod
    def of(cls, opened: _Opened, wanted: Sequence[ShareItem]) -> _FirstBatch | None:
        """The first batch of the ``wanted`` items, if the opening released one. It must
        have asked the first wanted items, in order; anything else is the key service's
        error."""
        asked = opened.opening.asked
        if opened.opening.release is None or not wanted:
            return None
        expected = [(item.record_id, item.version) for item in wanted[: len(asked)]]
        if list(asked) != expected:
            raise KeyServiceError("the key service released other items than the share's next")
        return cls(len(asked), opened.keys, opened.asked_at)


@dataclass
class _Counter:
    count: int = 0


class _Fetching:
    """Items received on ``FETCHERS`` threads, each taken by the first fetcher free, and
    recorded in the manifest in the order they were handed over. Leaving the context on an
    error waits for the items under way and records those received, so that no file is left
    in place that the manifest does not name."""

    def __init__(self, manifest: _Manifest) -> None:
        self._manifest = manifest
        self._pool = ThreadPoolExecutor(max_workers=FETCHERS, thread_name_prefix="carevault-share")
        self._running: deque[tuple[Future[ReceivedItem | None], ShareItem]] = deque()
        self.fetched: list[ReceivedItem] = []

    def warm(self) -> None:
        """Start every fetching thread now, idle. Threads started only as the first items
        are handed over each waited behind the running ones for the interpreter's lock
        (about 20 ms from the first item's start to the fourth's on a busy machine)."""
        started = threading.Barrier(FETCHERS)
        for _ in range(FETCHERS):
            # Each waits for the others, so the pool starts a thread for each.
            self._pool.submit(started.wait, 10.0)

    def submit(
        self, item: ShareItem, fetch: Callable[..., ReceivedItem | None], *args: object
    ) -> None:
        """Hand ``item`` over: ``fetch(*args)`` receives it, or returns None to leave it."""
        self._running.append((self._pool.submit(fetch, *args), item))

    def collect(self, until: int) -> list[ShareItem]:
        """Record the items received, in order, until at most ``until`` are under way, and
        return those left; raise the first failure."""
        left: list[ShareItem] = []
        while len(self._running) > until:
            future, item = self._running.popleft()
            received = future.result()
            if received is None:
                left.append(item)
                continue
            self._manifest.add(received)
            self.fetched.append(received)
        return left

    def __enter__(self) -> _Fetching:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            while self._running:
                with contextlib.suppress(Exception):
                    self.collect(len(self._running) - 1)
        finally:
            self._pool.shutdown(wait=True)


class _Ticks:
    """A ``ShareProgress`` told of items from the calling thread and of bytes from the
    fetching threads, one call at a time."""

    def __init__(self, progress: ShareProgress) -> None:
        self._progress = progress
        self._lock = threading.Lock()

    def fetching(self, *, record_id: str, version: int, size: int) -> None:
        with self._lock:
            self._progress.fetching(record_id=record_id, version=version, size=size)

    def advance(self, count: int) -> None:
        with self._lock:
            self._progress.advance(count)


class _Manifest:
    """The download directory's record of what it received of one share (see the module's
    docstring), rewritten whole, through a renamed temporary file, after items are recorded.

    The rewrites run in order on a thread of their own (a rename over the previous manifest
    makes ext4 write the new one out, a few ms each, which would hold up the next item's
    start), and the items recorded while one waits to start share it; ``flush`` waits for
    them and raises what one raised. Fetching threads place items while the caller's thread
    records others: both under one lock."""

    def __init__(self, directory: Path, share_id: str, entries: list[ReceivedItem]) -> None:
        self.directory = directory
        self.share_id = share_id
        self._entries = {(entry.record_id, entry.version): entry for entry in entries}
        self.fetched_now: list[ReceivedItem] = []
        # The files of items under way, not yet recorded: no other item may take their names.
        self._reserved: set[Path] = set()
        # Fetching threads place items while the caller's thread records others.
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []
        # A rewrite is waiting to start: it will write whatever is recorded by then.
        self._queued = False

    @classmethod
    def load(cls, directory: Path, share_id: str) -> _Manifest:
        """The manifest in ``directory``; a missing or unreadable one is empty (everything is
        fetched again, which is safe)."""
        try:
            document = json.loads(manifest_path(directory, share_id).read_text("utf-8"))
            entries = [cls._entry(directory, raw) for raw in document["items"]]
            if document["format"] != MANIFEST_FORMAT or document["share_id"] != share_id:
                entries = []
        except (OSError, ValueError, KeyError, TypeError):
            entries = []
        return cls(directory, share_id, [entry for entry in entries if entry is not None])

    @staticmethod
    def _entry(directory: Path, raw: dict[str, object]) -> ReceivedItem | None:
        name = raw["file"]
        record_id, version, size, sha256 = (
            raw["record_id"],
            raw["version"],
            raw["size"],
            raw["sha256"],
        )
        if not (
            isinstance(name, str)
            and _plain_name(name)
            and isinstance(record_id, str)
            and type(version) is int
            and type(size) is int
            and isinstance(sha256, str)
        ):
            return None
        ciphertext = raw.get("ciphertext_sha256")
        if not (isinstance(ciphertext, str) and _HEX_SHA256.fullmatch(ciphertext)):
            ciphertext = None
        return ReceivedItem(
            record_id=record_id,
            version=version,
            path=directory / name,
            size=size,
            sha256=sha256,
            file_name=str(raw.get("file_name") or ""),
            content_type=str(raw.get("content_type") or ""),
            ciphertext_sha256=ciphertext,
        )

    def all_verified(self) -> dict[tuple[str, int], ReceivedItem]:
        """Every item received earlier whose file is still there and still matches."""
        return {
            pair: entry for pair in self._entries if (entry := self.verified(*pair)) is not None
        }

    def verified(self, record_id: str, version: int) -> ReceivedItem | None:
        """The item as received earlier, if its file is still there and still matches."""
        entry = self._entries.get((record_id, version))
        if entry is None:
            return None
        try:
            if entry.path.stat().st_size != entry.size:
                return None
            digest = hashlib.sha256()
            with entry.path.open("rb") as existing:
                while block := existing.read(_READ_BLOCK):
                    digest.update(block)
        except OSError:
            return None
        return entry if digest.hexdigest() == entry.sha256 else None

    def place(self, record_id: str, version: int, file_name: str) -> Path:
        """Where an item goes: its own file name, unless that is empty, hidden, or taken by
        another item or a file this share did not write; then prefixed with its record id."""
        with self._lock:
            ours = self._entries.get((record_id, version))
            taken = {
                entry.path.name
                for key, entry in self._entries.items()
                if key != (record_id, version)
            } | {path.name for path in self._reserved}
            prefixed = f"{record_id}-v{version}"
            candidates = [file_name, f"{prefixed}-{file_name}" if file_name else prefixed]
            candidates += [f"{prefixed}-{n}-{file_name}" for n in range(2, 100)]
            for name in candidates:
                if not _plain_name(name) or name in taken:
                    continue
                path = self.directory / name
                if not path.exists() or (ours is not None and ours.path == path):
                    self._reserved.add(path)
                    return path
        raise FileExistsError(f"no free file name for record {record_id} in {self.directory}")

    def unreserve(self, path: Path) -> None:
        """An item placed at ``path`` was not received."""
        with self._lock:
            self._reserved.discard(path)

    def add(self, received: ReceivedItem) -> None:
        """Record an item received; the manifest is rewritten soon after, off this thread
        (items recorded while a rewrite waits to start share it)."""
        with self._lock:
            self._reserved.discard(received.path)
            self._entries[(received.record_id, received.version)] = received
            self.fetched_now.append(received)
            if self._queued:
                return
            self._queued = True
        if self._writer is None:
            self._writer = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="carevault-manifest"
            )
        self._writes.append(self._writer.submit(self._write_latest))

    def _write_latest(self) -> None:
        with self._lock:
            self._queued = False
            document = self._document()
        self._write(document)

    def _document(self) -> dict[str, object]:
        return {
            "format": MANIFEST_FORMAT,
            "share_id": self.share_id,
            "items": [
                {
                    "record_id": entry.record_id,
                    "version": entry.version,
                    "file": entry.path.name,
                    "size": entry.size,
                    "sha256": entry.sha256,
                    "file_name": entry.file_name,
                    "content_type": entry.content_type,
                    **(
                        {"ciphertext_sha256": entry.ciphertext_sha256}
                        if entry.ciphertext_sha256 is not None
                        else {}
                    ),
                }
                for entry in self._entries.values()
            ],
        }

    def flush(self) -> None:
        """Wait until every rewrite is on disk; raise the first that failed."""
        writes, self._writes = self._writes, []
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        for write in writes:
            write.result()

    def _write(self, document: dict[str, object]) -> None:
        target = manifest_path(self.directory, self.share_id)
        fd, tmp_name = tempfile.mkstemp(
            dir=self.directory, prefix=f"{target.name}.", suffix=".part"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=2)
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise


def _first_batch(items: Sequence[ShareItem]) -> int:
    """How many items the first release asks for (see the module's docstring); one when the
    key service did not say how large they are."""
    count, total = 0, 0
    for item in items:
        if item.ciphertext_size is None:
            break
        total += item.ciphertext_size
        if total > FIRST_BATCH_BYTES:
            break
        count += 1
    return max(1, count)


def _plain_name(name: str) -> bool:
    """A name that stays inside the directory and is not hidden (the manifest is)."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name
