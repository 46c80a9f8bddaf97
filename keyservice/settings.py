"""Key service settings, read from ``CAREVAULT_*`` environment variables.

The defaults are the embedded deployment: SQLite in WAL mode, a local-directory blob store
and a local root key file, all under one data directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    root_key_file: Path
    blob_store: str
    s3_endpoint_url: str | None
    public_url: str
    audience: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("CAREVAULT_DATA_DIR", ".carevault")).resolve()
        return cls(
            data_dir=data_dir,
            database_url=env.get(
                "CAREVAULT_DATABASE_URL", f"sqlite:///{data_dir / 'carevault.db'}"
            ),
            root_key_file=Path(env.get("CAREVAULT_ROOT_KEY_FILE", str(data_dir / "root.key"))),
            blob_store=env.get("CAREVAULT_BLOB_STORE", f"local:{data_dir / 'blobs'}"),
            s3_endpoint_url=env.get("CAREVAULT_S3_ENDPOINT_URL") or None,
            public_url=env.get("CAREVAULT_PUBLIC_URL", "http://127.0.0.1:8800").rstrip("/"),
            audience=env.get("CAREVAULT_AUDIENCE", "carevault"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
