"""The benchmark harness: ratio orientation, medians, interleaving, child memory, JSON lines."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.__main__ import check_record, discover

REPO = Path(__file__).resolve().parents[2]


def test_rate_ratio_is_ours_over_baseline() -> None:
    record = bench.rate_record(
        bench="b", metric="m", value=300.0, unit="MiB/s", baseline="x", baseline_value=100.0
    )
    assert record["ratio"] == 3.0


def test_time_ratio_is_baseline_over_ours() -> None:
    faster = bench.time_record(
        bench="b", metric="m", value=0.5, unit="s", baseline="x", baseline_value=2.0
    )
    slower = bench.time_record(
        bench="b", metric="m", value=2.0, unit="s", baseline="x", baseline_value=0.5
    )
    assert faster["ratio"] == 4.0
    assert slower["ratio"] == 0.25


def test_record_without_baseline_has_no_ratio() -> None:
    record = bench.time_record(bench="b", metric="m", value=1.0, unit="s", rounds=3)
    assert record == {"bench": "b", "metric": "m", "value": 1.0, "unit": "s", "rounds": 3}


def test_record_refuses_a_baseline_without_value_or_zero_figures() -> None:
    with pytest.raises(ValueError):
        bench.rate_record(bench="b", metric="m", value=1.0, unit="x", baseline="y")
    with pytest.raises(ValueError):
        bench.rate_record(
            bench="b", metric="m", value=1.0, unit="x", baseline="y", baseline_value=0.0
        )
    with pytest.raises(ValueError):
        bench.time_record(
            bench="b", metric="m", value=0.0, unit="x", baseline="y", baseline_value=1.0
        )


def test_extra_fields_cannot_overwrite_the_contract() -> None:
    with pytest.raises(ValueError):
        bench.rate_record(bench="b", metric="m", value=1.0, unit="x", **{"ratio": 9.0})


def test_median_of_odd_and_even_series() -> None:
    assert bench.median([5.0, 1.0, 3.0]) == 3.0
    assert bench.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        bench.median([])


def test_alternate_interleaves_rounds_and_rotates_order() -> None:
    calls: list[str] = []

    def contender(name: str, value: float) -> float:
        calls.append(name)
        return value

    results = bench.alternate(
        {
            "ours": functools.partial(contender, "ours", 1.0),
            "base": functools.partial(contender, "base", 2.0),
        },
        rounds=3,
    )
    assert results == {"ours": [1.0, 1.0, 1.0], "base": [2.0, 2.0, 2.0]}
    assert calls == ["ours", "base", "base", "ours", "ours", "base"]
    with pytest.raises(ValueError):
        bench.alternate({"ours": lambda: 1.0}, rounds=0)


def _allocate(mib: int) -> None:
    block = bytearray(mib * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])


def test_peak_rss_of_child_command_sees_its_allocation() -> None:
    idle = bench.peak_rss_of_child([sys.executable, "-c", "pass"])
    code = "b = bytearray(96 << 20); b[::4096] = b'x' * len(b[::4096])"
    busy = bench.peak_rss_of_child([sys.executable, "-c", code])
    assert busy - idle > 60


def test_peak_rss_of_child_callable_sees_its_allocation() -> None:
    small = bench.peak_rss_of_child(functools.partial(_allocate, 1))
    large = bench.peak_rss_of_child(functools.partial(_allocate, 96))
    assert large - small > 60


def test_peak_rss_of_failing_child_raises() -> None:
    with pytest.raises(RuntimeError):
        bench.peak_rss_of_child([sys.executable, "-c", "raise SystemExit(3)"])


def test_check_record_refuses_missing_or_partial_fields() -> None:
    check_record("b", {"bench": "b", "metric": "m", "value": 1, "unit": "s"})
    with pytest.raises(ValueError):
        check_record("b", {"bench": "b", "metric": "m", "value": 1})
    with pytest.raises(ValueError):
        check_record("b", {"bench": "b", "metric": "m", "value": 1, "unit": "s", "ratio": 2})


def test_discover_lists_modules_but_not_helpers() -> None:
    names = discover()
    assert "plumbing" in names
    assert not any(name.startswith("_") for name in names)


def _run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plumbing_quick_prints_one_json_object_per_line() -> None:
    result = _run_bench("plumbing", "--quick")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 2
    for line in lines:
        record = json.loads(line)
        assert record["bench"] == "plumbing"
        assert isinstance(record["metric"], str)
        assert isinstance(record["unit"], str)
        assert math.isfinite(record["value"]) and record["value"] > 0
        if "baseline" in record:
            assert record["baseline_value"] > 0
            assert record["ratio"] > 0
    metrics = {json.loads(line)["metric"] for line in lines}
    assert {"sha256_throughput", "hash_file_peak_rss"} <= metrics


def test_runner_lists_and_refuses_unknown_names() -> None:
    listed = _run_bench("--list")
    assert listed.returncode == 0
    assert "plumbing" in listed.stdout.split()
    unknown = _run_bench("no-such-benchmark")
    assert unknown.returncode != 0
    assert "unknown benchmark" in unknown.stderr
    neither = _run_bench()
    assert neither.returncode != 0


@pytest.mark.integration
def test_s3client_quick_measures_the_stores_own_calls_against_both_clients() -> None:
    result = _run_bench("s3client", "--quick")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    metrics = {r["metric"] for r in records}
    assert {
        "presign_get_client_cpu",
        "presign_put_client_cpu",
        "head_client_cpu",
        "commit_digest_get_client_cpu",
        "delete_then_put_client_cpu",
        "small_get_client_cpu",
        "large_get_throughput",
    } <= metrics
    store_calls = [r for r in records if r.get("ours") == "carevault-store"]
    assert {r["baseline"] for r in store_calls} == {"boto3", "minio"}
    assert all(r["ratio"] > 0 for r in records if "baseline" in r)
