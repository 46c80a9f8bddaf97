"""The assurance bench's figures on a few worlds, so that a change that breaks the bench (or the
model's suites it runs) is caught by the tests rather than at the next measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import assurance
from bench.__main__ import check_record


def test_pure_worlds_figure() -> None:
    record = assurance.pure_worlds(300)
    check_record("assurance", record)
    assert record["metric"] == "policy_worlds_mismatched"
    assert record["value"] == 0 and record["worlds"] == 300


@pytest.mark.integration
def test_api_worlds_figure(tmp_path: Path) -> None:
    record = assurance.api_worlds_figures(tmp_path, 2)
    check_record("assurance", record)
    assert record["metric"] == "api_worlds_mismatched"
    assert record["value"] == 0 and record["worlds"] == 2
    assert int(record["comparisons"]) >= 20  # type: ignore[call-overload]
