"""How the CLI talks to people and scripts: Rich tables or ``--json``, plain-words errors and
the documented exit codes."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import PurePath
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from vault.errors import (
    AccessDenied,
    AuthenticationFailed,
    KeyFileError,
    KeyServiceRequestError,
    NotFound,
    RecordUnavailable,
    ShareRefused,
    VaultError,
)
from vault.format import FormatError, IntegrityError, VaultFormatError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DENIED = 3
EXIT_INTEGRITY = 4

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 error (network, storage, key file); 2 wrong usage; "
    "3 not allowed or not found; 4 a record failed its integrity check (nothing was written)."
)

UNAVAILABLE = (
    "You are not allowed to read this record, or it does not exist. If you think you should "
    "be, ask your manager to check your room assignment."
)
INTEGRITY = (
    "This record failed its integrity check: it was changed or damaged in storage, so it was "
    "not saved. Nothing was written to the output file. Please tell your administrator."
)

err_console = Console(stderr=True)
out_console = Console()


@dataclasses.dataclass
class Options:
    """Global options, kept on the Typer context."""

    profile_dir: Any
    json: bool


def options(ctx: typer.Context) -> Options:
    found = ctx.find_object(Options)
    if found is None:
        raise RuntimeError("the CLI's global options were not set up")
    return found


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_plain(value), indent=2) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    # Cells hold what people typed (names, file names, reasons): text, never Rich markup.
    # Nothing is cut short on a narrow terminal: cells fold, and "… id" columns are kept
    # whole, as ids are there to be copied.
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column, overflow="fold", no_wrap=column.endswith(" id"))
    for row in rows:
        view.add_row(*("" if cell is None else escape(str(_plain(cell))) for cell in row))
    out_console.print(view)


def say(message: str) -> None:
    """Print ``message`` as it is: what it quotes may hold brackets Rich would read as markup."""
    out_console.print(message, markup=False)


def report(ctx: typer.Context, value: dict[str, object], message: str) -> None:
    """A command's outcome: ``value`` as JSON with ``--json``, else ``message`` in words."""
    if options(ctx).json:
        emit_json(value)
    else:
        say(message)


def _explain(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, ShareRefused):
        return EXIT_DENIED, str(exc)
    if isinstance(exc, RecordUnavailable):
        return EXIT_DENIED, UNAVAILABLE
    if isinstance(exc, IntegrityError):
        return EXIT_INTEGRITY, INTEGRITY
    if isinstance(exc, AccessDenied | NotFound | AuthenticationFailed):
        return EXIT_DENIED, str(exc)
    if isinstance(exc, KeyServiceRequestError) and exc.status == 422:
        return EXIT_USAGE, f"The key service did not accept the request: {exc}"
    if isinstance(exc, KeyFileError | VaultError | FormatError | VaultFormatError):
        return EXIT_ERROR, str(exc)
    if isinstance(exc, FileNotFoundError):
        return EXIT_ERROR, f"No such file: {exc.filename}"
    if isinstance(exc, OSError):
        return EXIT_ERROR, f"Cannot use the file {exc.filename or ''}: {exc.strerror or exc}"
    raise exc


def fail(exc: BaseException, *, as_json: bool) -> typer.Exit:
    """Tell the user what went wrong in plain words; return the Exit to raise."""
    code, message = _explain(exc)
    if as_json:
        sys.stderr.write(json.dumps({"error": message, "exit_code": code}) + "\n")
    else:
        err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


P = ParamSpec("P")
R = TypeVar("R")


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the library's errors into a message and an exit code, never a stack trace."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (VaultError, VaultFormatError, OSError) as exc:
            # Every command takes the Typer context as ``ctx``; its options say whether to
            # answer in JSON.
            ctx = kwargs.get("ctx")
            found = ctx.find_object(Options) if hasattr(ctx, "find_object") else None
            as_json = bool(found and found.json)
            raise fail(exc, as_json=as_json) from None

    return wrapper


@contextmanager
def transfer_progress(
    description: str, total: int, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr while bytes move; silent for scripts and pipes."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not enabled or not err_console.is_terminal,
    )
    with progress:
        # A download's size is only known once it starts; Rich shows a pulsing bar meanwhile.
        task = progress.add_task(description, total=total or None)
        yield lambda count: progress.advance(task, count)
