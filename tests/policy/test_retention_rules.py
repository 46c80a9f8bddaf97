"""Retention rules (keyservice/policy/retention.py): the regulations' defaults, overrides,
and a bad setting named."""

from __future__ import annotations

from datetime import date

import pytest

from keyservice.policy.retention import DEFAULT_RETENTION, parse_rules, rule_for


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
