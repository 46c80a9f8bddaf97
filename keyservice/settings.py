"""Key service settings, read from ``CAREVAULT_*`` environment variables and checked in one place.

The defaults are the embedded deployment: SQLite in WAL mode, a local-directory blob store
and a local root key file, all under one data directory. Every value is parsed and checked
here, by pydantic-settings, before anything opens: a malformed value, or a ``CAREVAULT_*``
variable that is no setting (a misspelling would otherwise be ignored silently), raises
``SettingsError`` whose message is one line naming the variable and what to do. What can only
be known by reaching out (the database, the bucket, the root key) is checked when the
service starts (keyservice/ops/checks.py). Two values have a grammar of their own, owned by
the layers above (the root key's, keyservice/keys/select.py, and the retention rules',
keyservice/policy/retention.py): ``keyservice.ops.startup.load_settings`` checks them too,
before anything opens. README.md lists every setting with its default.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

PREFIX = "CAREVAULT_"

# CAREVAULT_* variables that other Carevault programs read (the client CLI's profile and
# passphrase, the native topology's state file, a bench's PostgreSQL, the assurance suites'
# mode and worlds): found in an operator's
# shell or a test's environment, they are not misspelt settings.
OTHER_PROGRAMS = frozenset(
    {
        "CAREVAULT_HOME",
        "CAREVAULT_PASSPHRASE",
        "CAREVAULT_TOPOLOGY_STATE",
        "CAREVAULT_BENCH_POSTGRES_URL",
        "CAREVAULT_ASSURANCE",
        "CAREVAULT_API_SEEDS",
        "CAREVAULT_API_WORLDS",
    }
)

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
S3_MIN_PART = 5 << 20

# What a good value looks like, per setting: the second half of every refusal.
_EXPECTED: dict[str, str] = {
    "database_url": "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE",
    "blob_store": "use local:DIRECTORY or s3://BUCKET",
    "root_key": "use file:PATH, kms:KEY_ID_OR_ARN or pkcs11:token=LABEL;object=LABEL",
    "public_url": "use the http(s)://HOST[:PORT] clients reach the service at",
    "s3_endpoint_url": "use http(s)://HOST[:PORT] of the S3-compatible store, or unset it for AWS",
    "kms_endpoint_url": "use http(s)://HOST[:PORT] of the KMS, or unset it for AWS",
    "sqlite_synchronous": "use FULL (the default), NORMAL, OFF or EXTRA",
    "part_size_bytes": f"use at least {S3_MIN_PART} (S3's smallest part)",
    "metrics_token": "use at least 32 characters, e.g. from `openssl rand -hex 32`",
}


class SettingsError(ValueError):
    """A setting the service cannot start with; the message is one line naming it."""


class Settings(BaseSettings):
    """Every setting of the key service; a field is read from its name upper-cased after
    the ``CAREVAULT_`` prefix (``max_upload_bytes``: ``CAREVAULT_MAX_UPLOAD_BYTES``)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, case_sensitive=False, frozen=True, env_ignore_empty=True
    )

    data_dir: Path = Path(".carevault")
    database_url: str = ""
    # The root key provider (keyservice/keys/select.py): file:PATH, kms:KEY or pkcs11:…
    # CAREVAULT_ROOT_KEY_FILE is the older spelling of file:PATH, read when it is unset.
    root_key: str = ""
    root_key_file: Path | None = None
    blob_store: str = ""
    s3_endpoint_url: str | None = None
    public_url: str = "http://127.0.0.1:8800"
    audience: str = "carevault"
    # FULL: a committed audit entry survives power loss (docs/decisions/0003-sqlite-durability.md).
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    # Signs local blob URLs; created in the data directory on first start.
    token_key_file: Path = Path()
    # Signs audit checkpoints; created in the data directory on first start.
    audit_key_file: Path = Path()
    checkpoint_every: PositiveInt = 1000
    # Keys the audit entries' MACs; created in the data directory on first start, never in
    # the database (docs/AUDIT.md).
    audit_mac_key_file: Path = Path()
    # How often each instance checkpoints the chain's head if it has moved, and where the
    # checkpoints go besides the database: a blob store spec (the blob store unless set).
    checkpoint_seconds: PositiveFloat = 60.0
    checkpoint_store: str = ""
    pending_upload_hours: PositiveFloat = 24.0
    # How long a root-unwrapped child key stays in memory (0 disables the cache).
    child_key_cache_seconds: NonNegativeFloat = 60.0
    max_upload_bytes: PositiveInt = 1 << 30
    # Uploads above the threshold go in parts of part_size_bytes (at least S3's 5 MiB).
    multipart_threshold_bytes: Annotated[int, Field(ge=0)] = 64 << 20
    part_size_bytes: Annotated[int, Field(ge=S3_MIN_PART)] = 16 << 20
    # Rejected requests per source address and window: answered 429 past the limit, audited
    # one by one up to audit_each per reason, then as one entry with a count (decision 0011:
    # 1 since issue 16, so a flood costs a source a few entries a window, not 22).
    reject_window_seconds: PositiveFloat = 60.0
    reject_limit: PositiveInt = 120
    reject_audit_each: PositiveInt = 1
    # For kms: root keys; unset means boto3's defaults (AWS_REGION, AWS itself).
    kms_region: str | None = None
    kms_endpoint_url: str | None = None
    # For pkcs11: root keys: the module (.so) and the user PIN, from a 0600 file or the
    # environment; the PIN is never shown.
    pkcs11_module: Path | None = None
    pkcs11_pin_file: Path | None = None
    pkcs11_pin: str | None = Field(default=None, repr=False)
    # Retention rules by record category (keyservice/policy/retention.py; decision 0019).
    retention: str = "*=left+5y,safeguarding=age+25y"
    # An approved shred waits this long, cancellable, before the keys are destroyed; due
    # shreds are carried out by a timer every shred_check_seconds and by the next request
    # that touches them.
    shred_wait_days: NonNegativeFloat = 30.0
    shred_check_seconds: PositiveFloat = 300.0
    # The root key provider a deployment is moving away from (root-key migrate, decision 0017).
    root_key_previous: str | None = None
    # Rotation jobs: wraps per batch, and how long a job's claim by an instance lasts without
    # progress before another instance (or the same one restarted) takes it over.
    job_batch_size: PositiveInt = 2000
    job_lease_seconds: PositiveFloat = 30.0
    job_poll_seconds: PositiveFloat = 1.0
    # After each batch the runner pauses this many times as long as the batch took, so that
    # requests get the process (and SQLite's one writer) between batches; 0: no pause.
    job_yield: NonNegativeFloat = 1.0
    # On SIGTERM: how long in-flight requests may take to finish before the process closes.
    shutdown_grace_seconds: Annotated[int, Field(ge=0)] = 30
    # Log lines: JSON objects (one a line), at this level and above (docs/OPERATIONS.md).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # /metrics (docs/OPERATIONS.md): answered only to a bearer of this token; unset, /metrics
    # is not served at all.
    metrics_token: str | None = Field(default=None, repr=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment only (no .env file, no secrets directory), or the mapping given to
        # from_env.
        return (init_settings, _GivenEnvironment(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, values: Any) -> Any:
        """Defaults that depend on the data directory (or on another setting)."""
        if not isinstance(values, dict):
            return values
        data_dir = Path(values.get("data_dir") or ".carevault").resolve()
        blob_store = values.get("blob_store") or f"local:{data_dir / 'blobs'}"
        root_key_file = values.get("root_key_file") or str(data_dir / "root.key")
        defaults = {
            "database_url": f"sqlite:///{data_dir / 'carevault.db'}",
            "root_key": f"file:{root_key_file}",
            "blob_store": blob_store,
            "checkpoint_store": blob_store,
            "token_key_file": str(data_dir / "blob-token.key"),
            "audit_key_file": str(data_dir / "audit-signing.key"),
            "audit_mac_key_file": str(data_dir / "audit-mac.key"),
        }
        filled = {**values, "data_dir": str(data_dir)}
        for name, default in defaults.items():
            if not filled.get(name):
                filled[name] = default
        for upper in ("sqlite_synchronous", "log_level"):
            if isinstance(filled.get(upper), str):
                filled[upper] = filled[upper].upper()
        return filled

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return _http_url(value).rstrip("/")

    @field_validator("s3_endpoint_url", "kms_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"{url.get_backend_name()!r} is neither SQLite nor PostgreSQL")
        if url.get_backend_name() == "postgresql" and not url.database:
            raise ValueError("no database named")
        return value

    @field_validator("blob_store", "checkpoint_store")
    @classmethod
    def _blob_store(cls, value: str) -> str:
        if value.startswith("local:") and value != "local:":
            return value
        bucket = value.removeprefix("s3://")
        if value.startswith("s3://") and bucket and "/" not in bucket:
            return value
        raise ValueError("not a blob store")

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("too short to be unguessable")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in ``env`` (by default the process's environment); ``SettingsError``
        naming the first variable that is wrong."""
        env = dict(os.environ if env is None else env)
        refuse_unknown(env)
        token = _ENVIRONMENT.set(env)
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(_one_line(exc, env)) from None
        finally:
            _ENVIRONMENT.reset(token)

    @classmethod
    def variables(cls) -> list[str]:
        """Every ``CAREVAULT_*`` variable the service reads."""
        return [f"{PREFIX}{name.upper()}" for name in cls.model_fields]


_ENVIRONMENT: ContextVar[dict[str, str] | None] = ContextVar("carevault_settings_env", default=None)


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping ``from_env`` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _ENVIRONMENT.get()
        if env is None:
            return super()._load_env_vars()
        return parse_env_vars(env, self.case_sensitive, self.env_ignore_empty, None)


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError("not a URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    return value


def refuse_unknown(env: Mapping[str, str]) -> None:
    known = set(Settings.variables()) | OTHER_PROGRAMS
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise SettingsError(
                f"{name} is not a setting of the key service: {hint}remove it or fix its "
                "name (README.md lists every setting)"
            )


_SECRET = ("pkcs11_pin", "metrics_token")


def _shown(name: str, value: str) -> str:
    """The value as a refusal may show it: never a secret, never a database password."""
    if name in _SECRET:
        return "(not shown)"
    if name == "database_url":
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return repr(make_url(value).render_as_string(hide_password=True))
        except ArgumentError:
            return "(not a URL)"
    return repr(value)


def _one_line(exc: ValidationError, env: Mapping[str, str]) -> str:
    error = exc.errors(include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    variable = f"{PREFIX}{name.upper()}"
    raw = next((v for k, v in env.items() if k.upper() == variable), None)
    if raw is None and name == "root_key":
        raw = env.get(f"{PREFIX}ROOT_KEY_FILE")
    value = "" if raw is None else f"={_shown(name, raw)}"
    reason = str(error["msg"]).removeprefix("Value error, ")
    if reason.startswith(PREFIX):
        return reason.replace("\n", " ")  # a refusal that names the setting itself
    what = _EXPECTED.get(name, "fix or unset it (README.md lists every setting and its default)")
    return f"{variable}{value} is refused: {reason[:1].lower()}{reason[1:]}; {what}".replace(
        "\n", " "
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
