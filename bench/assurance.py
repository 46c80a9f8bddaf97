"""The independent model of docs/POLICY.md against the service: ``python -m bench assurance``.

Two figures sets, from the suites of tests/model (decision 0028):

- ``policy_worlds_mismatched``: random worlds (tests/model/worlds.py) decided by the plain model
  and by ``keyservice.policy.decide``; the worlds that differ (must be 0), with the worlds
  compared and how many each basis allowed riding along;
- ``api_worlds_mismatched``: worlds built through a real key service (embedded: SQLite, local
  blobs; tests/model/api_worlds.py) and compared on real releases and adds; the worlds and the
  comparisons made (must be 0 mismatched).

``--quick``: 5,000 pure worlds and 4 API worlds (under 30 s on a quiet machine); otherwise
100,000 and 100.
``make assurance`` runs the long mode of the tests themselves (100,000 and 1,000).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bench._harness import Record
from tests.keyservice.helpers import approver_for, bootstrap_admin
from tests.model import adapter, api_worlds
from tests.servers import KeyServiceFactory, make_temp_dir

BENCH = "assurance"


def pure_worlds(count: int) -> Record:
    started = time.perf_counter()
    compared, mismatches, outcomes = adapter.run(0, count)
    elapsed = time.perf_counter() - started
    return {
        "bench": BENCH,
        "metric": "policy_worlds_mismatched",
        "value": len(mismatches),
        "unit": "worlds",
        "worlds": compared,
        "outcomes": outcomes,
        "shredded_children": adapter.SHRED_AWARE,
        "seconds": round(elapsed, 2),
        "first_mismatch_seed": mismatches[0].seed if mismatches else None,
    }


def _no_servers() -> object:
    raise RuntimeError("the assurance bench runs the embedded key service only")


def api_worlds_figures(base_dir: Path, count: int) -> Record:
    factory = KeyServiceFactory(base_dir, postgres=_no_servers, s3=_no_servers)  # type: ignore[arg-type]
    try:
        service = factory(flavour="embedded")
        admin = bootstrap_admin(service)
        approver = approver_for(admin)
        started = time.perf_counter()
        comparisons, mismatched, refused = 0, [], 0
        for seed in range(count):
            result = api_worlds.compare(service, admin, approver, seed)
            comparisons += result.comparisons
            refused += result.refused_changes
            if result.mismatches:
                mismatched.append(seed)
        elapsed = time.perf_counter() - started
    finally:
        factory.stop_all()
    return {
        "bench": BENCH,
        "metric": "api_worlds_mismatched",
        "value": len(mismatched),
        "unit": "worlds",
        "worlds": count,
        "comparisons": comparisons,
        "changes_refused_by_the_service": refused,
        "database": "sqlite",
        "seconds": round(elapsed, 2),
        "mismatched_seeds": mismatched[:20],
    }


def run(quick: bool) -> Iterator[Record]:
    yield pure_worlds(5_000 if quick else 100_000)
    base_dir = make_temp_dir("bench-assurance-")
    try:
        yield api_worlds_figures(base_dir, 4 if quick else 100)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
