"""Retention rules (keyservice/policy/retention.py): the regulations' defaults, overrides,
and a bad setting named."""

from __future__ import annotations

from datetime import date

import pytest

from keyservice.policy.retention import DEFAULT_RETENTION, parse_rules, rule_for
from keyservice.policy.writes import Change, Person, Write, may_approve_shred, may_write


def test_the_defaults_follow_the_regulations() -> None:
    rules = parse_rules(DEFAULT_RETENTION)
    # Massachusetts 606 CMR 7.04: five years after the child leaves the program.
    observation = rule_for(rules, "observation")
    assert observation.due_on(date_of_birth=None, left_on=date(2020, 7, 31)) == date(2025, 7, 31)
    # UK child-protection files: until the child is 25.
    safeguarding = rule_for(rules, "safeguarding")
    assert safeguarding.due_on(date_of_birth=date(2016, 2, 29), left_on=None) == date(2041, 2, 28)


def test_an_unknown_date_is_never_due() -> None:
    rules = parse_rules(DEFAULT_RETENTION)
    assert rule_for(rules, "photo").due_on(date_of_birth=date(2000, 1, 1), left_on=None) is None


def test_a_deployment_overrides_a_category() -> None:
    rules = parse_rules("*=left+5y,medical=age+21y")
    assert rule_for(rules, "medical").text == "medical=age+21y"
    assert rule_for(rules, "safeguarding").text == "*=left+5y"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "*=left+5",
        "*=born+5y",
        "pets=left+5y,*=left+5y",
        "medical=age+21y",
        "*=left+5y,*=age+1y",
    ],
)
def test_a_bad_setting_is_refused_and_named(bad: str) -> None:
    with pytest.raises(ValueError, match="CAREVAULT_RETENTION"):
        parse_rules(bad)


ADMIN = Person("admin", "staff", frozenset({"admin"}), frozenset({"admin"}))
LEAD = Person("dsl", "staff", frozenset({"dsl"}), frozenset({"dsl"}), frozenset({"dsl"}))
OTHER_LEAD = Person(
    "mgr", "staff", frozenset({"manager"}), frozenset({"mgr"}), frozenset({"manager"})
)
EDUCATOR = Person(
    "edu", "staff", frozenset({"educator"}), frozenset({"edu"}), frozenset({"educator"})
)
SHREDDING = [
    Change.LEGAL_HOLD_SET,
    Change.LEGAL_HOLD_LIFT,
    Change.SHRED_REQUEST,
    Change.SHRED_APPROVE,
    Change.SHRED_CANCEL,
]


@pytest.mark.parametrize("change", SHREDDING)
def test_only_a_lead_of_the_child_holds_or_shreds_never_an_admin_alone(change: Change) -> None:
    assert may_write(Write(change, LEAD)).allowed
    for person in (ADMIN, EDUCATOR):
        verdict = may_write(Write(change, person))
        assert (verdict.allowed, verdict.reason) == (False, "no_standing")


def test_a_childs_dates_are_set_by_an_admin_or_a_lead() -> None:
    assert may_write(Write(Change.CHILD_DATES, ADMIN)).allowed
    assert may_write(Write(Change.CHILD_DATES, LEAD)).allowed
    assert not may_write(Write(Change.CHILD_DATES, EDUCATOR)).allowed


def test_a_shred_is_approved_by_a_second_independent_person() -> None:
    assert may_approve_shred(LEAD, OTHER_LEAD).allowed
    assert may_approve_shred(LEAD, LEAD).reason == "own_request"
    # Someone who saw the requester's enrolment code might be acting as them.
    vouched = Person("mgr", "staff", frozenset({"manager"}), frozenset({"mgr", "dsl"}))
    assert may_approve_shred(LEAD, vouched).reason == "same_circle_as_requester"
