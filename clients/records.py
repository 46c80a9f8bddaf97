"""``carevault records …``: list, add, read, amend and delete a child's records."""

from __future__ import annotations

import mimetypes
import sys
from pathlib import Path
from typing import Annotated

import typer

from clients.output import emit_json, friendly, options, say, table, transfer_progress
from clients.session import connect
from vault.client import RecordInfo
from vault.format import Category

app = typer.Typer(help="List, add, read, amend and delete records.", no_args_is_help=True)


def _guess_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _show(title: str, infos: list[RecordInfo], *, as_json: bool) -> None:
    if as_json:
        emit_json(infos)
        return
    table(
        title,
        ["record id", "version", "category", "file", "size", "added"],
        [(i.record_id, i.version, i.category, i.file_name, i.size, i.created_at) for i in infos],
    )


@app.command("list")
@friendly
def list_records(
    ctx: typer.Context, child: Annotated[str, typer.Option(help="The child's id.")]
) -> None:
    """The records of a child that you may read (newest version of each)."""
    _show("Records", connect(ctx).records(child), as_json=options(ctx).json)


@app.command()
@friendly
def put(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The file to add, or - for standard input.")],
    child: Annotated[
        list[str], typer.Option(help="A child the record belongs to (repeat for a group).")
    ],
    category: Annotated[Category, typer.Option(help="What kind of record this is.")],
    name: Annotated[
        str | None, typer.Option(help="File name to keep with the record (default: FILE's).")
    ] = None,
    content_type: Annotated[
        str | None, typer.Option(help="Media type (default: guessed from the name).")
    ] = None,
    withheld_from_guardians: Annotated[
        bool,
        typer.Option(
            "--withheld-from-guardians",
            help="Holds third-party information: guardians may not read it.",
        ),
    ] = False,
) -> None:
    """Encrypt a file on this computer and add it as a new record."""
    client = connect(ctx)
    as_json = options(ctx).json
    if str(file) == "-":
        ref = client.put(
            child_ids=child,
            category=category,
            stream=sys.stdin.buffer,
            file_name=name or "",
            content_type=content_type,
            withheld_from_guardians=withheld_from_guardians,
        )
    else:
        size = file.stat().st_size
        with transfer_progress(f"Uploading {file.name}", size, enabled=not as_json) as tick:
            ref = client.put(
                child_ids=child,
                category=category,
                path=file,
                file_name=name,
                content_type=content_type or _guess_type(file),
                withheld_from_guardians=withheld_from_guardians,
                progress=tick,
            )
    if as_json:
        emit_json(ref)
    else:
        say(f"Added record {ref.record_id} (version {ref.version}).")


@app.command()
@friendly
def amend(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(help="The record to add a version to.")],
    file: Annotated[Path, typer.Argument(help="The new content.")],
) -> None:
    """Add a new version of a record; earlier versions are kept."""
    with transfer_progress(
        f"Uploading {file.name}", file.stat().st_size, enabled=not options(ctx).json
    ) as tick:
        ref = connect(ctx).amend(record_id, path=file, file_name=file.name, progress=tick)
    if options(ctx).json:
        emit_json(ref)
    else:
        say(f"Record {ref.record_id} is now at version {ref.version}.")


@app.command()
@friendly
def get(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(help="The record to read.")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="File or directory to write (default: here)."),
    ] = Path("."),
    version: Annotated[int | None, typer.Option(help="A version (default: latest).")] = None,
    offset: Annotated[
        int | None, typer.Option(help="Read only from this byte (with --length).")
    ] = None,
    length: Annotated[int | None, typer.Option(help="How many bytes to read.")] = None,
) -> None:
    """Download, check and decrypt a record. Nothing is written if the check fails."""
    client = connect(ctx)
    as_json = options(ctx).json
    if offset is not None or length is not None:
        if offset is None or length is None:
            raise typer.BadParameter("give both --offset and --length")
        data = client.get_range(record_id, start=offset, length=length, version=version)
        target = output / f"{record_id}.part-{offset}" if output.is_dir() else output
        target.write_bytes(data)
    else:
        with transfer_progress("Downloading", 0, enabled=not as_json) as tick:
            target = client.get(record_id, dst=output, version=version, progress=tick)
    if as_json:
        emit_json({"record_id": record_id, "path": str(target)})
    else:
        say(f"Saved to {target}.")


@app.command()
@friendly
def history(
    ctx: typer.Context, record_id: Annotated[str, typer.Argument(help="The record.")]
) -> None:
    """Every version of a record."""
    _show("History", connect(ctx).history(record_id), as_json=options(ctx).json)


@app.command("rm")
@friendly
def remove(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(help="The record to destroy.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Destroy a record for good: every version's key is shredded, then its files."""
    if not yes:
        typer.confirm(
            f"Destroy record {record_id} and all its versions? This cannot be undone",
            abort=True,
        )
    connect(ctx).delete(record_id)
    if options(ctx).json:
        emit_json({"record_id": record_id, "deleted": True})
    else:
        say(f"Record {record_id} was destroyed.")
