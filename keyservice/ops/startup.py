"""Starting the service, or refusing to with one line that names the setting and what to do.

``carevault-keyservice serve`` checks, in this order: the settings (keyservice/settings.py),
that the database answers, that the root key opens (keyservice/keys/select.py names the
setting in its own refusals), and that the blob store (and a separate checkpoint store) can
be listed. The first failure is printed to stderr as one line and the process exits with
``EX_CONFIG`` (78, sysexits.h), before anything listens.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from typing import NoReturn

import typer
from fastapi import FastAPI

from keyservice.datadir import private_dir
from keyservice.db import make_engine
from keyservice.errors import InsecureDataError, KeyServiceError, RootKeyError
from keyservice.keys import open_root_key
from keyservice.keys.select import parse_root_key
from keyservice.ops import checks
from keyservice.policy.retention import parse_rules
from keyservice.settings import Settings, SettingsError

EX_CONFIG = 78


def refuse(line: str) -> NoReturn:
    typer.echo(f"carevault-keyservice: {line}", err=True)
    raise typer.Exit(code=EX_CONFIG)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """``Settings.from_env`` and the values whose grammar belongs to the layers above the
    settings: the root key providers and the retention rules; ``SettingsError`` naming the
    first that is wrong, in one line."""
    settings = Settings.from_env(env)
    for variable, value in (
        ("CAREVAULT_ROOT_KEY", settings.root_key),
        ("CAREVAULT_ROOT_KEY_PREVIOUS", settings.root_key_previous),
    ):
        if value is not None:
            try:
                parse_root_key(value)
            except RootKeyError as exc:
                # Its message names CAREVAULT_ROOT_KEY and says what a good value is.
                line = str(exc).replace("CAREVAULT_ROOT_KEY=", f"{variable}=", 1)
                raise SettingsError(line) from None
    try:
        parse_rules(settings.retention)
    except ValueError as exc:
        reason = str(exc).removeprefix("CAREVAULT_RETENTION: ")
        raise SettingsError(
            f"CAREVAULT_RETENTION={settings.retention!r} is refused: {reason}"
        ) from None
    return settings


def settings_or_refuse() -> Settings:
    """The settings, with the data directory made (private) if missing; or a refusal."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        refuse(str(exc))
    try:
        private_dir(settings.data_dir)
    except InsecureDataError as exc:
        refuse(f"CAREVAULT_DATA_DIR={str(settings.data_dir)!r}: {' '.join(str(exc).split())}")
    except OSError as exc:
        refuse(
            f"CAREVAULT_DATA_DIR={str(settings.data_dir)!r} cannot be made ({exc.strerror}): "
            "choose a directory the service's account can create"
        )
    return settings


def start_app(settings: Settings) -> FastAPI:
    """The application, every part it needs reached; or a one-line refusal and exit.

    Warnings are held back meanwhile (a client's retries, say): a failure is its one line."""
    logging.disable(logging.WARNING)
    try:
        return _start_app(settings)
    finally:
        logging.disable(logging.NOTSET)


def _start_app(settings: Settings) -> FastAPI:
    from keyservice.app import build_state, create_app

    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    reason = checks.database(engine)
    engine.dispose()
    if reason is not None:
        refuse(checks.refusal(checks.DATABASE, settings, reason))
    try:
        root = open_root_key(settings)
    except (KeyServiceError, OSError) as exc:
        line = " ".join(str(exc).split())
        if not line.startswith("CAREVAULT_"):
            line = f"CAREVAULT_ROOT_KEY={settings.root_key!r}: {line}; {checks.ROOT_KEY.what_to_do}"
        refuse(line)
    try:
        app = create_app(state=build_state(settings, root=root))
    except (KeyServiceError, ValueError) as exc:
        # CAREVAULT_RETENTION's refusal and the key files' name what to do.
        refuse(" ".join(str(exc).split()))
    state = app.state.service
    reason = checks.blob_store(state.blobs)
    if reason is not None:
        refuse(checks.refusal(checks.BLOB_STORE, settings, reason))
    if settings.checkpoint_store != settings.blob_store:
        reason = checks.blob_store(state.checkpoints)
        if reason is not None:
            refuse(checks.refusal(checks.CHECKPOINT_STORE, settings, reason))
    reason = checks.root_key(settings, state.root)
    if reason is not None:
        refuse(checks.refusal(checks.ROOT_KEY, settings, reason))
    return app


def tune_gc() -> None:
    """A 1,000-record release allocates tens of thousands of short-lived objects (rows, dicts,
    attributes); with the default thresholds the collector ran every 700 of them and walked the
    whole imported application each time an older generation filled, about a tenth of a bulk
    release. Everything built at start lives as long as the process: moved out of the
    collector's sight, and young collections made rarer. Cycles are still collected."""
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
