"""The rejection ledger on its own: windows, the limit, and a bounded footprint.

The service-level behaviour (429s, coalesced entries, the shutdown flush) is tested against a
real service in test_rejections.py; here the clock is a seam, so window ends are exact.
"""

from __future__ import annotations

import contextvars

from keyservice.audit.chain import AuditEvent
from keyservice.auth.rejections import SOURCE, Coalesced, RejectionLedger


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reject(ledger: RejectionLedger, source: str, reason: str = "bad_signature") -> bool:
    """Count one rejection from ``source``; whether it is audited at once."""

    def admit() -> AuditEvent | None:
        SOURCE.set(source)
        return ledger.admit(
            AuditEvent(action="auth.reject", outcome="deny", detail={"reason": reason})
        )

    return contextvars.copy_context().run(admit) is not None


def _counts(coalesced: list[Coalesced]) -> dict[tuple[str, str], int]:
    return {(c.source, c.reason): c.count for c in coalesced}


def test_the_limit_holds_until_the_window_ends() -> None:
    clock = Clock()
    ledger = RejectionLedger(window_s=10, limit=3, audit_each=1, monotonic=clock)
    assert [_reject(ledger, "a") for _ in range(3)] == [True, False, False]
    assert ledger.retry_after("b") is None
    clock.now += 2.5
    assert ledger.retry_after("a") == 8
    assert ledger.take_due() == []
    clock.now += 7.5
    assert ledger.retry_after("a") is None
    assert _counts(ledger.take_due()) == {("a", "bad_signature"): 2}
    assert _reject(ledger, "a") is True


def test_each_reason_has_its_own_allowance() -> None:
    ledger = RejectionLedger(window_s=10, limit=100, audit_each=2, monotonic=Clock())
    audited = [_reject(ledger, "a", reason) for reason in ["x", "y", "x", "y", "x", "y"]]
    assert audited == [True, True, True, True, False, False]
    assert _counts(ledger.take_all()) == {("a", "x"): 1, ("a", "y"): 1}


def test_the_footprint_is_bounded_and_no_count_is_lost() -> None:
    ledger = RejectionLedger(window_s=60, limit=100, audit_each=1, max_sources=4, monotonic=Clock())
    for n in range(100):
        for _ in range(3):
            _reject(ledger, f"10.0.0.{n}")
        assert len(ledger) <= 4
    due = ledger.take_due()
    assert len(due) == 96
    assert sum(c.count for c in due + ledger.take_all()) == 200


def test_counts_given_back_are_merged_with_new_ones() -> None:
    clock = Clock()
    ledger = RejectionLedger(window_s=10, limit=100, audit_each=0, monotonic=clock)
    _reject(ledger, "a")
    clock.now += 10
    unwritten = ledger.take_due()
    assert _counts(unwritten) == {("a", "bad_signature"): 1}
    _reject(ledger, "a")
    ledger.give_back(unwritten)
    assert _counts(ledger.take_all()) == {("a", "bad_signature"): 2}
