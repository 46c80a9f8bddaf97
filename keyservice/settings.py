"""Key service settings, read from ``CAREVAULT_*`` environment variables.

The defaults are the embedded deployment: SQLite in WAL mode, a local-directory blob store
and a local root key file, all under one data directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    # The root key provider (keyservice/keys/select.py): file:PATH, kms:KEY or pkcs11:…
    # CAREVAULT_ROOT_KEY_FILE is the older spelling of file:PATH, read when it is unset.
    root_key: str
    blob_store: str
    s3_endpoint_url: str | None
    public_url: str
    audience: str
    # FULL: a committed audit entry survives power loss (docs/decisions/0003-sqlite-durability.md).
    sqlite_synchronous: str
    # Signs local blob URLs; created in the data directory on first start.
    token_key_file: Path
    # Signs audit checkpoints; created in the data directory on first start.
    audit_key_file: Path
    checkpoint_every: int
    # Keys the audit entries' MACs; created in the data directory on first start, never in
    # the database (docs/AUDIT.md).
    audit_mac_key_file: Path
    # How often each instance checkpoints the chain's head if it has moved, and where the
    # checkpoints go besides the database: a blob store spec (the blob store unless set).
    checkpoint_seconds: float
    checkpoint_store: str
    pending_upload_hours: float
    # How long a root-unwrapped child key stays in memory (0 disables the cache).
    child_key_cache_seconds: float
    max_upload_bytes: int
    # Uploads above the threshold go in parts of part_size_bytes (at least S3's 5 MiB).
    multipart_threshold_bytes: int
    part_size_bytes: int
    # Rejected requests per source address and window: answered 429 past the limit, audited
    # one by one up to audit_each per reason, then as one entry with a count (decision 0011).
    reject_window_seconds: float = 60.0
    reject_limit: int = 120
    reject_audit_each: int = 20
    # For kms: root keys; unset means boto3's defaults (AWS_REGION, AWS itself).
    kms_region: str | None = None
    kms_endpoint_url: str | None = None
    # For pkcs11: root keys: the module (.so) and the user PIN, from a 0600 file or the
    # environment; the PIN is never shown.
    pkcs11_module: Path | None = None
    pkcs11_pin_file: Path | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)
    # Retention rules by record category (keyservice/policy/retention.py; decision 0019).
    retention: str = "*=left+5y,safeguarding=age+25y"
    # An approved shred waits this long, cancellable, before the keys are destroyed; due
    # shreds are carried out by a timer every shred_check_seconds and by the next request
    # that touches them.
    shred_wait_days: float = 30.0
    shred_check_seconds: float = 300.0
    # The root key provider a deployment is moving away from (root-key migrate, decision 0017).
    root_key_previous: str | None = None
    # Rotation jobs: wraps per batch, and how long a job's claim by an instance lasts without
    # progress before another instance (or the same one restarted) takes it over.
    job_batch_size: int = 2000
    job_lease_seconds: float = 30.0
    job_poll_seconds: float = 1.0
    # After each batch the runner pauses this many times as long as the batch took, so that
    # requests get the process (and SQLite's one writer) between batches; 0: no pause.
    job_yield: float = 1.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("CAREVAULT_DATA_DIR", ".carevault")).resolve()
        blob_store = env.get("CAREVAULT_BLOB_STORE", f"local:{data_dir / 'blobs'}")
        return cls(
            data_dir=data_dir,
            database_url=env.get(
                "CAREVAULT_DATABASE_URL", f"sqlite:///{data_dir / 'carevault.db'}"
            ),
            root_key=env.get("CAREVAULT_ROOT_KEY")
            or f"file:{env.get('CAREVAULT_ROOT_KEY_FILE', str(data_dir / 'root.key'))}",
            blob_store=blob_store,
            s3_endpoint_url=env.get("CAREVAULT_S3_ENDPOINT_URL") or None,
            public_url=env.get("CAREVAULT_PUBLIC_URL", "http://127.0.0.1:8800").rstrip("/"),
            audience=env.get("CAREVAULT_AUDIENCE", "carevault"),
            sqlite_synchronous=env.get("CAREVAULT_SQLITE_SYNCHRONOUS", "FULL").upper(),
            token_key_file=Path(
                env.get("CAREVAULT_TOKEN_KEY_FILE", str(data_dir / "blob-token.key"))
            ),
            audit_key_file=Path(
                env.get("CAREVAULT_AUDIT_KEY_FILE", str(data_dir / "audit-signing.key"))
            ),
            checkpoint_every=int(env.get("CAREVAULT_CHECKPOINT_EVERY", "1000")),
            audit_mac_key_file=Path(
                env.get("CAREVAULT_AUDIT_MAC_KEY_FILE", str(data_dir / "audit-mac.key"))
            ),
            checkpoint_seconds=float(env.get("CAREVAULT_CHECKPOINT_SECONDS", "60")),
            checkpoint_store=env.get("CAREVAULT_CHECKPOINT_STORE", blob_store),
            pending_upload_hours=float(env.get("CAREVAULT_PENDING_UPLOAD_HOURS", "24")),
            child_key_cache_seconds=float(env.get("CAREVAULT_CHILD_KEY_CACHE_SECONDS", "60")),
            max_upload_bytes=int(env.get("CAREVAULT_MAX_UPLOAD_BYTES", str(1 << 30))),
            multipart_threshold_bytes=int(
                env.get("CAREVAULT_MULTIPART_THRESHOLD_BYTES", str(64 << 20))
            ),
            part_size_bytes=int(env.get("CAREVAULT_PART_SIZE_BYTES", str(16 << 20))),
            reject_window_seconds=float(env.get("CAREVAULT_REJECT_WINDOW_SECONDS", "60")),
            reject_limit=int(env.get("CAREVAULT_REJECT_LIMIT", "120")),
            reject_audit_each=int(env.get("CAREVAULT_REJECT_AUDIT_EACH", "20")),
            kms_region=env.get("CAREVAULT_KMS_REGION") or None,
            kms_endpoint_url=env.get("CAREVAULT_KMS_ENDPOINT_URL") or None,
            pkcs11_module=_path(env.get("CAREVAULT_PKCS11_MODULE")),
            pkcs11_pin_file=_path(env.get("CAREVAULT_PKCS11_PIN_FILE")),
            pkcs11_pin=env.get("CAREVAULT_PKCS11_PIN") or None,
            retention=env.get("CAREVAULT_RETENTION", "*=left+5y,safeguarding=age+25y"),
            shred_wait_days=float(env.get("CAREVAULT_SHRED_WAIT_DAYS", "30")),
            shred_check_seconds=float(env.get("CAREVAULT_SHRED_CHECK_SECONDS", "300")),
            root_key_previous=env.get("CAREVAULT_ROOT_KEY_PREVIOUS") or None,
            job_batch_size=int(env.get("CAREVAULT_JOB_BATCH_SIZE", "2000")),
            job_lease_seconds=float(env.get("CAREVAULT_JOB_LEASE_SECONDS", "30")),
            job_poll_seconds=float(env.get("CAREVAULT_JOB_POLL_SECONDS", "1")),
            job_yield=float(env.get("CAREVAULT_JOB_YIELD", "1")),
        )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
