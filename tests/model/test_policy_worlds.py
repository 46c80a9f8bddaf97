"""The service's policy against the plain model of docs/POLICY.md on random worlds (decision 0028).

10,000 worlds in the default run; CAREVAULT_ASSURANCE=long (`make assurance`) compares
100,000. A mismatch prints the world's seed and a description of it; rerun one world with
`python -m tests.model.replay SEED`.
"""

from __future__ import annotations

import os

import pytest

from tests.model import model
from tests.model.adapter import compare, run
from tests.model.worlds import world

LONG = os.environ.get("CAREVAULT_ASSURANCE") == "long"
WORLDS = 100_000 if LONG else 10_000
pytestmark = pytest.mark.timeout(900 if LONG else 300)


def test_random_worlds_agree_with_the_document() -> None:
    count, mismatches, outcomes = run(0, WORLDS)
    assert count == WORLDS
    assert not mismatches, f"{len(mismatches)} of {count} worlds differ; first:\n{mismatches[0]}"
    # The worlds reach every basis and plenty of refusals, or the comparison proves little.
    for basis in ("assignment", "guardianship", "consent", "court_order", "denied"):
        assert outcomes.get(basis, 0) >= WORLDS // 400, outcomes


def test_the_generator_is_reproducible() -> None:
    first, again = world(1234), world(1234)
    assert first == again
    assert world(1234) != world(1235)


def test_a_model_that_forgets_a_rule_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison can fail: a model that lets educators read safeguarding records differs
    from the policy, and the difference names the world's seed."""
    monkeypatch.setattr(model, "LEAD_ROLES", ("dsl", "manager", "educator"))
    found = [m for m in (compare(seed) for seed in range(3_000)) if m is not None]
    assert found, "no world asked an educator for a safeguarding record"
    assert all(m.expected.allowed and not m.got.allowed for m in found)
    assert f"world seed {found[0].seed}:" in str(found[0])
    assert "safeguarding" in str(found[0])
