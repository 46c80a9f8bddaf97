"""The rotation bench's parts, tiny, against a real key service and moto, so that a change to
rotation jobs that breaks the bench is caught by the tests rather than at the next
measurement."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import rotation
from bench.__main__ import check_record

pytestmark = pytest.mark.integration


def _checked(records: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    for record in records:
        check_record("rotation", record)
        assert math.isfinite(float(record["value"]))  # type: ignore[arg-type]
    return {(record["metric"], record.get("provider")): record for record in records}


def test_rewrap_moves_every_wrap_and_writes_no_blob_bytes(tmp_path: Path) -> None:
    found = _checked(list(rotation.rewrap(tmp_path, wraps=300, rounds=1, database=None)))
    rate = found[("rewrap_keys_per_s", None)]
    assert float(rate["value"]) > 0  # type: ignore[arg-type]
    assert rate["blob_bytes_written"] == 0
    assert float(found[("blob_bytes_written", None)]["value"]) == 0  # type: ignore[arg-type]


def test_releases_during_a_rotation_are_compared_with_idle_ones(tmp_path: Path) -> None:
    found = _checked(list(rotation.during_rotation(tmp_path, wraps=6000, idle_s=0.2, rounds=1)))
    during = found[("release_throughput_during_rotation", None)]
    assert during["baseline"] == "release-idle" and float(during["ratio"]) > 0  # type: ignore[arg-type]
    assert float(found[("release_errors_during_rotation", None)]["value"]) == 0  # type: ignore[arg-type]


def test_root_rotation_with_the_file_and_with_kms(tmp_path: Path) -> None:
    found = _checked(list(rotation.root_rotation(tmp_path, local_keys=20, kms_keys=5)))
    assert float(found[("root_rotation_child_keys_per_s", "file")]["value"]) > 0  # type: ignore[arg-type]
    kms = found[("root_rotation_child_keys_per_s", "kms (moto over HTTP)")]
    assert kms["kms_calls_per_child_key_version"] == 1.0
    assert kms["kms_calls"] == ["ReEncrypt"]
    assert kms["kms_calls_per_new_child_key_version"] == 1
