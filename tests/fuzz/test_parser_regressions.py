"""Inputs the atheris targets (tests/fuzz/fuzz_*.py) found, kept as named cases, and a check
that each target's committed seeds still run clean.

Each case failed before its fix: the parser raised something other than its own error, which
the service answers as a 500.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyservice.catalog.imports import ImportInvalidError, parse

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CORPUS = Path(__file__).parent / "corpus"


def _refused(text: str) -> ImportInvalidError:
    with pytest.raises(ImportInvalidError) as refused:
        parse(text, default_start=NOW)
    return refused.value


def test_csv_import_bare_carriage_return_in_a_header_is_a_bad_header() -> None:
    """fuzz_csv_import crash-e809aef1: ``K]\\r`=`` raised csv.Error ("new-line character
    seen in unquoted field")."""
    refused = _refused("K]\r`=")
    assert refused.errors[0].line == 1


def test_csv_import_carriage_return_line_ends_are_read_as_lines() -> None:
    """A file saved with old Mac line ends (bare CR) is read like any other."""
    kind, rows, bad = parse(
        "staff_id,room,role,valid_from,valid_to\r" + "0123456789abcdef" * 2 + ",room 1,dsl,,\r",
        default_start=NOW,
    )
    assert (kind, len(rows), bad) == ("staff", 1, [])


def test_csv_import_field_over_the_csv_module_limit_is_a_bad_row() -> None:
    """A field longer than the csv module's limit (131,072 characters, well under the body's
    4 MiB) raised csv.Error ("field larger than field limit")."""
    assert csv.field_size_limit() < 4 * 1024 * 1024
    text = "staff_id,room,role,valid_from,valid_to\n" + "a" * 140_000 + ",room 1,dsl,,\n"
    refused = _refused(text)
    assert refused.errors[0].line == 2
    assert refused.errors[0].code == "csv"


@pytest.mark.parametrize("target", ["format", "signature", "digest", "metadata", "csv_import"])
def test_fuzz_target_runs_its_seeds_clean(target: str, tmp_path: Path) -> None:
    """Each target runs over its committed seeds (and a few hundred mutations) without a
    crash: the targets themselves stay runnable."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            f"tests.fuzz.fuzz_{target}",
            "-atheris_runs=500",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(CORPUS / target),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr
