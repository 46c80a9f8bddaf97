"""The benchmark runner: discovers ``bench/<name>.py`` modules and prints JSON lines."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, cast

REQUIRED_FIELDS = ("bench", "metric", "value", "unit")
COMPARISON_FIELDS = ("baseline", "baseline_value", "ratio")


class Benchmark(Protocol):
    def run(self, quick: bool) -> Iterator[dict[str, object]]: ...


def discover() -> list[str]:
    """The benchmark names: modules of this package whose names do not start with ``_``."""
    here = str(Path(__file__).parent)
    return sorted(
        info.name for info in pkgutil.iter_modules([here]) if not info.name.startswith("_")
    )


def check_record(name: str, record: dict[str, object]) -> None:
    """Refuse a record that is not one the runner's contract allows."""
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ValueError(f"benchmark {name} yielded a record without {missing}: {record}")
    present = [f for f in COMPARISON_FIELDS if f in record]
    if present and len(present) != len(COMPARISON_FIELDS):
        raise ValueError(f"benchmark {name} yielded a partial comparison: {record}")


def run_one(name: str, quick: bool) -> None:
    module = cast(Benchmark, importlib.import_module(f"bench.{name}"))
    for record in module.run(quick):
        check_record(name, record)
        print(json.dumps(record, allow_nan=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", nargs="?", help="the benchmark to run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    parser.add_argument("--all", action="store_true", help="run every benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller rounds (< 30 s)")
    args = parser.parse_args(argv)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    if args.all == (args.name is not None):
        parser.error("give one benchmark NAME or --all")
    if args.name is not None and args.name not in names:
        parser.error(f"unknown benchmark {args.name!r}; known: {', '.join(names)}")
    failed = []
    for name in names if args.all else [args.name]:
        try:
            run_one(name, args.quick)
        except Exception:
            # With --all one broken benchmark must not hide the others' figures.
            traceback.print_exc()
            print(f"benchmark {name} failed", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
