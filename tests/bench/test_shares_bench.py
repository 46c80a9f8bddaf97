"""The shares bench's setup and one tiny round, against a real key service and moto, so that a
change to shares, consents or enrolment that breaks the bench is caught by the tests rather
than at the next measurement."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import shares
from bench.__main__ import check_record

pytestmark = pytest.mark.integration


def test_one_tiny_round_of_every_figure(tmp_path: Path) -> None:
    records = list(
        shares.measure(tmp_path, records=16, devices=24, duration=0.5, rounds=1, get_rounds=1)
    )
    for record in records:
        check_record("shares", record)
        assert math.isfinite(float(record["value"])) and float(record["value"]) > 0  # type: ignore[arg-type]
        assert float(record["ratio"]) > 0  # type: ignore[arg-type]
    by_metric = {record["metric"]: record for record in records}
    assert set(by_metric) == {
        "share_release_throughput",
        "capped_release_p99_ms",
        "share_get_throughput",
    }
    assert by_metric["share_release_throughput"]["baseline"] == "assignment-release"
    assert by_metric["capped_release_p99_ms"]["baseline"] == "assignment-release"
    # Every capped release was counted against the cap (measure raises otherwise).
    assert int(by_metric["capped_release_p99_ms"]["counted"]) > 0  # type: ignore[call-overload]
    assert by_metric["share_get_throughput"]["baseline"] == "plain-s3"


def test_capped_pairs_never_repeat_and_run_out_loudly() -> None:
    seen = {shares._pair(index, 3, 5) for index in range(15)}
    assert seen == {(device, record) for device in range(3) for record in range(5)}
    with pytest.raises(RuntimeError, match="add devices"):
        shares._pair(15, 3, 5)
