"""Fuzz target for the CSV importer's parser: `python -m tests.fuzz.fuzz_csv_import <flags>`.

``POST /v1/admin/imports`` hands the body's ``csv`` text to
``keyservice.catalog.imports.parse`` before anything touches the database; only that parsing
function is called here. Each input is either text of its own or a valid file of one of the
five kinds with edits. The only allowed failure is ``ImportInvalidError`` (the file's bad
rows, answered 422); every row it accepts must be one of the file's lines and every bad row
must name a line of the file.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["keyservice.catalog.imports"]):
    from keyservice.catalog.imports import HEADERS, ImportInvalidError, parse

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ID = "0123456789abcdef" * 2
SEEDS = {
    "assignments": f"{ID},{ID},educator,2026-01-01,2026-12-31T00:00:00+00:00\n",
    "staff": f"{ID},room 1,manager,,\n",
    "children": f'{ID},"room, 2",2026-02-01,\n',
    "new_children": "Ada Lovelace,2022-03-04,,room 1,2026-01-05\n",
    "new_staff": "Grace Hopper,educator;dsl,room 1,dsl,\n",
}
FILES = [",".join(HEADERS[kind]) + "\n" + rows for kind, rows in SEEDS.items()]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        text = fdp.ConsumeUnicode(fdp.remaining_bytes())
    else:
        base = FILES[fdp.ConsumeIntInRange(0, len(FILES) - 1)]
        chars = list(base)
        for _ in range(fdp.ConsumeIntInRange(1, 6)):
            at = fdp.ConsumeIntInRange(0, len(chars))
            op = fdp.ConsumeIntInRange(0, 3)
            if op == 0 and at < len(chars):
                chars[at] = fdp.ConsumeUnicode(1) or ","
            elif op == 1:
                chars[at:at] = list(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(1, 24)))
            elif op == 2:
                del chars[at : at + fdp.ConsumeIntInRange(1, 12)]
            else:
                # Repeat a stretch: more rows, longer fields; now and then past the csv
                # module's field limit (131,072 characters), which costs a slow run.
                stretch = chars[at : at + fdp.ConsumeIntInRange(1, 40)]
                most = 4096 if fdp.ConsumeIntInRange(0, 63) == 0 else 64
                chars[at:at] = stretch * fdp.ConsumeIntInRange(1, most)
        text = "".join(chars)
    try:
        kind, rows, bad = parse(text, default_start=NOW)
    except ImportInvalidError as exc:
        if not exc.errors:
            raise AssertionError("an invalid file named no bad row") from None
        return
    if kind not in HEADERS:
        raise AssertionError(f"unknown kind {kind!r}")
    lines = text.count("\n") + text.count("\r") + 1
    for row in rows:
        if not 2 <= row.line <= lines:
            raise AssertionError(f"row {row!r} names no line of the file")
    for row in bad:
        if not 1 <= row.line <= lines:
            raise AssertionError(f"bad row {row!r} names no line of the file")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
