"""The imports bench's setup and one tiny round, against a real key service on PostgreSQL, so
that a change to rooms, imports or proposals that breaks the bench is caught by the tests
rather than at the next measurement."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import imports
from bench.__main__ import check_record

pytestmark = pytest.mark.integration


def test_one_tiny_round_of_every_figure(tmp_path: Path) -> None:
    records = list(imports.measure(tmp_path, rows=60, rounds=1))
    for record in records:
        check_record("imports", record)
        assert math.isfinite(float(record["value"])) and float(record["value"]) > 0  # type: ignore[arg-type]
    by_metric = {record["metric"]: record for record in records}
    assert set(by_metric) == {
        "import_rows_per_s",
        "import_dry_run_rows_per_s",
        "import_create_children_rows_per_s",
        "import_create_children_dry_run_rows_per_s",
    }
    assert by_metric["import_rows_per_s"]["rows"] == 60
    assert by_metric["import_create_children_rows_per_s"]["rows"] == 60
    assert by_metric["import_rows_per_s"]["database"] == "postgresql"


def test_the_file_names_every_pair_once() -> None:
    text = imports._csv(["s1", "s2", "s3"], ["c1", "c2"], 5)
    lines = text.splitlines()
    assert lines[0] == "staff_id,child_id,role,valid_from,valid_to"
    pairs = [tuple(line.split(",")[:2]) for line in lines[1:]]
    assert len(pairs) == 5 and len(set(pairs)) == 5
