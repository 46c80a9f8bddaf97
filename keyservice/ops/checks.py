"""Whether the parts the service depends on can be reached: at start and on ``/readyz``.

Three parts: the database, the blob store (and the checkpoint store, when it is another) and
the root key. Each check is a small real call: ``SELECT 1``, listing at most one object name,
and for the root key a read of its file or a wrap and unwrap through its provider (a KMS or
an HSM call). A check answers ``None`` or a short reason; the reason is for the log and for
the start's one-line refusal, never for the unauthenticated ``/readyz`` answer, which names
only the part and its setting (docs/OPERATIONS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from keyservice.keys import RootKeyProvider
from keyservice.keys.select import FileRootKey, parse_root_key
from keyservice.settings import Settings
from vault.storage import BlobStore, StorageError


@dataclass(frozen=True)
class Part:
    """A part the service needs, as named in ``/readyz`` and in the refusal to start."""

    name: str
    setting: str
    what_to_do: str


DATABASE = Part(
    "database",
    "CAREVAULT_DATABASE_URL",
    "start the database or fix the URL (host, port, database name, credentials)",
)
BLOB_STORE = Part(
    "blob_store",
    "CAREVAULT_BLOB_STORE",
    "create the bucket (with versioning) or fix its name, CAREVAULT_S3_ENDPOINT_URL and the "
    "AWS credentials",
)
CHECKPOINT_STORE = Part(
    "checkpoint_store",
    "CAREVAULT_CHECKPOINT_STORE",
    "create the bucket or fix its name (unset, the blob store is used)",
)
ROOT_KEY = Part(
    "root_key",
    "CAREVAULT_ROOT_KEY",
    "make the key file readable by the service, or the KMS or HSM reachable and the key enabled",
)
PARTS = (DATABASE, BLOB_STORE, ROOT_KEY)

_PROBE_CONTEXT = b"carevault/readiness-probe"


def _short(exc: BaseException) -> str:
    """The first line of an error's message, bounded: enough to act on, nothing more."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = lines[0] if lines else ""
    return (first or type(exc).__name__)[:240]


def database(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return _short(exc)
    return None


def blob_store(store: BlobStore) -> str | None:
    try:
        next(iter(store.list_names()), None)
    except (StorageError, OSError) as exc:
        return _short(exc)
    return None


def root_key(settings: Settings, root: RootKeyProvider) -> str | None:
    """A file root key must still be readable (another instance, or a restart, reads it);
    any other provider must wrap and unwrap a probe."""
    try:
        spec = parse_root_key(settings.root_key)
        if isinstance(spec, FileRootKey):
            with Path(spec.path).open("rb") as key_file:
                key_file.read(1)
        probe = b"\0" * 32
        if root.unwrap(root.wrap(probe, context=_PROBE_CONTEXT), context=_PROBE_CONTEXT) != probe:
            return "the root key did not unwrap what it wrapped"
    except Exception as exc:
        # OSError, RootKeyError, KeyUnwrapError, or a provider client's own error.
        return _short(exc)
    return None


def refusal(part: Part, settings: Settings, reason: str) -> str:
    """The one line a start refused because ``part`` cannot be reached prints."""
    value = {
        "database": _database_shown(settings.database_url),
        "blob_store": settings.blob_store,
        "checkpoint_store": settings.checkpoint_store,
        "root_key": settings.root_key,
    }[part.name]
    where = ""
    if part in (BLOB_STORE, CHECKPOINT_STORE) and settings.s3_endpoint_url:
        where = f" at CAREVAULT_S3_ENDPOINT_URL={settings.s3_endpoint_url!r}"
    return (
        f"{part.setting}={value!r}: the {part.name.replace('_', ' ')}{where} cannot be reached "
        f"({reason}); {part.what_to_do}"
    ).replace("\n", " ")


def _database_shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
