"""Checkpoints kept outside the database: one object per checkpoint in the blob store.

    name = checkpoint prefix ‖ part for seq        (keyservice.audit.mac: 32 hex characters)
    body = canonical JSON {"format": "carevault/audit-checkpoint/v1", "hash": <64 hex>,
                           "seq": <integer>, "signature": <128 hex>}

The body is the database row's statement and nothing else: no ids, no times. Ed25519
signatures are deterministic, so every instance that checkpoints an entry writes the same
bytes under the same name. The store is ``CAREVAULT_CHECKPOINT_STORE`` (the blob store unless
set); a bucket of its own with S3 Object Lock in compliance mode and a default retention keeps
every version written there for that long, whoever holds the credentials (docs/AUDIT.md).
"""

from __future__ import annotations

import io
import json
import re
from contextlib import closing
from typing import Any

from keyservice.audit.chain import canonical_json
from keyservice.audit.checkpoints import LABEL, Checkpoint
from keyservice.audit.mac import AuditMac
from keyservice.settings import Settings
from vault.storage import BlobStore, make_blob_store

FORMAT = LABEL.decode("ascii")
# A body is about 260 bytes; reading stops well past that.
MAX_BODY = 1024
_HASH = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(r"[0-9a-f]{128}")


def encode(checkpoint: Checkpoint) -> bytes:
    body = {
        "format": FORMAT,
        "hash": checkpoint.hash,
        "seq": checkpoint.seq,
        "signature": checkpoint.signature.hex(),
    }
    return canonical_json(body).encode("ascii")


def decode(data: bytes) -> Checkpoint:
    """The checkpoint ``data`` holds; ValueError if it is not exactly a checkpoint body."""
    try:
        body: Any = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("not a checkpoint") from exc
    if not isinstance(body, dict) or set(body) != {"format", "hash", "seq", "signature"}:
        raise ValueError("not a checkpoint")
    seq, digest, signature = body["seq"], body["hash"], body["signature"]
    if (
        body["format"] != FORMAT
        or type(seq) is not int
        or seq < 1
        or not isinstance(digest, str)
        or _HASH.fullmatch(digest) is None
        or not isinstance(signature, str)
        or _SIGNATURE.fullmatch(signature) is None
    ):
        raise ValueError("not a checkpoint")
    return Checkpoint(seq, digest, bytes.fromhex(signature))


def put(store: BlobStore, mac: AuditMac, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` under its name (the same bytes if it is there already)."""
    store.put(mac.checkpoint_name(checkpoint.seq), io.BytesIO(encode(checkpoint)))


def names(store: BlobStore, mac: AuditMac) -> set[str]:
    """The names of every object under the checkpoint prefix."""
    return set(store.list_names(mac.checkpoint_prefix))


def get(store: BlobStore, name: str) -> Checkpoint:
    """The checkpoint stored as ``name``; ValueError if that object is not one."""
    with closing(store.get(name)) as body:
        data = body.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise ValueError("not a checkpoint")
    return decode(data)


def open_store(settings: Settings, *, token_key: bytes) -> BlobStore:
    """The store ``CAREVAULT_CHECKPOINT_STORE`` names (the blob store's spec unless set)."""
    return make_blob_store(
        settings.checkpoint_store,
        s3_endpoint_url=settings.s3_endpoint_url,
        public_url=settings.public_url,
        token_key=token_key,
    )
