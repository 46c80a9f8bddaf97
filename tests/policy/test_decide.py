"""Edge cases of the release policy beyond the manager's table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

import keyservice.policy
from keyservice.policy import (
    Action,
    Assignment,
    Basis,
    Consent,
    CourtOrder,
    Facts,
    PrincipalFacts,
    PrincipalKind,
    RecordFacts,
    Share,
    decide,
)
from tests.policy import cast as c


def _facts(
    principal: PrincipalFacts,
    record: RecordFacts,
    *,
    action: Action = Action.READ,
    now: datetime = c.NOW,
    **relationships: tuple[object, ...],
) -> Facts:
    return Facts(principal=principal, action=action, record=record, now=now, **relationships)


def _assignment(**changes: object) -> Assignment:
    base = Assignment("as-1", "amira", "leo", "educator", c.NOW - c.DAY, c.NOW + c.DAY)
    return replace(base, **changes)


def test_public_surface() -> None:
    assert sorted(keyservice.policy.__all__) == [
        "Action",
        "Assignment",
        "Basis",
        "Consent",
        "CourtOrder",
        "CourtOrderEffect",
        "Decision",
        "Facts",
        "Guardianship",
        "PrincipalFacts",
        "PrincipalKind",
        "RecordFacts",
        "Share",
        "decide",
    ]


def test_no_relationships_at_all_is_denied() -> None:
    for principal in (c.AMIRA, c.MR_JONES, c.KAY, c.PRIYA, c.ALAN):
        for action in Action:
            decision = decide(_facts(principal, c.OBSERVATION, action=action))
            assert (decision.allowed, decision.basis) == (False, Basis.NONE)


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (c.NOW - c.DAY - timedelta(microseconds=1), False),
        (c.NOW - c.DAY, True),
        (c.NOW + c.DAY - timedelta(microseconds=1), True),
        (c.NOW + c.DAY, False),
    ],
    ids=["just-before-start", "at-start", "just-before-end", "at-end"],
)
def test_validity_windows_are_half_open(now: datetime, allowed: bool) -> None:
    facts = _facts(c.AMIRA, c.OBSERVATION, now=now, assignments=(_assignment(),))
    assert decide(facts).allowed is allowed


@pytest.mark.parametrize(
    "assignment",
    [
        _assignment(staff_id="ben"),
        _assignment(child_id="maya"),
        _assignment(role="admin"),
        _assignment(role="volunteer"),
    ],
    ids=["other-staff", "other-child", "admin-is-no-assignment-role", "unknown-role"],
)
def test_assignments_that_do_not_fit_are_ignored(assignment: Assignment) -> None:
    assert not decide(_facts(c.AMIRA, c.OBSERVATION, assignments=(assignment,))).allowed


def test_admin_role_never_unlocks_safeguarding() -> None:
    admin_dsl = replace(c.PRIYA, roles=frozenset({"admin"}))
    facts = _facts(
        admin_dsl, c.SAFEGUARDING, assignments=(_assignment(staff_id="priya", role="dsl"),)
    )
    assert not decide(facts).allowed


def test_any_current_assignment_of_the_right_role_is_enough() -> None:
    both = (
        _assignment(assignment_id="as-old", staff_id="priya", valid_to=c.NOW - c.DAY),
        _assignment(assignment_id="as-edu", staff_id="priya"),
        _assignment(assignment_id="as-dsl", staff_id="priya", role="dsl"),
    )
    decision = decide(_facts(c.PRIYA, c.SAFEGUARDING, assignments=both))
    assert decision.allowed
    assert "as-dsl" in decision.reason


def test_open_ended_assignment_has_no_end() -> None:
    facts = _facts(
        c.AMIRA,
        c.OBSERVATION,
        now=c.NOW + 50 * c.YEAR,
        assignments=(_assignment(valid_to=None),),
    )
    assert decide(facts).allowed


def test_a_child_listed_twice_counts_once() -> None:
    record = replace(c.OBSERVATION, child_ids=("leo", "leo"))
    decision = decide(_facts(c.AMIRA, record, assignments=(_assignment(),)))
    assert decision.allowed
    assert decision.reason.count("child leo") == 1


def test_restriction_listing_no_category_restricts_every_category() -> None:
    order = replace(c.COURT_ORDERS[0], categories=frozenset())
    for record in (c.OBSERVATION, c.MEDICAL, c.PHOTO):
        facts = _facts(c.MS_PATEL, record, guardianships=c.GUARDIANSHIPS, court_orders=(order,))
        assert not decide(facts).allowed


def test_restriction_of_another_guardian_or_child_does_not_apply() -> None:
    for order in (
        replace(c.COURT_ORDERS[0], subject_id="mr-jones"),
        replace(c.COURT_ORDERS[0], child_id="maya"),
    ):
        facts = _facts(
            c.MS_PATEL, c.OBSERVATION, guardianships=c.GUARDIANSHIPS, court_orders=(order,)
        )
        assert decide(facts).allowed


def test_restriction_not_yet_in_force_does_not_apply() -> None:
    order = replace(c.COURT_ORDERS[0], valid_from=c.NOW + c.DAY)
    facts = _facts(c.MS_PATEL, c.OBSERVATION, guardianships=c.GUARDIANSHIPS, court_orders=(order,))
    assert decide(facts).allowed


def test_a_disclosure_order_does_not_admit_a_guardian() -> None:
    order = replace(c.COURT_ORDERS[1], subject_id="rose")
    facts = _facts(
        c.GRANDMA_ROSE, c.OBSERVATION, guardianships=c.GUARDIANSHIPS, court_orders=(order,)
    )
    assert not decide(facts).allowed


def _kay(record: RecordFacts = c.OBSERVATION, **changes: tuple[object, ...]) -> Facts:
    relationships: dict[str, tuple[object, ...]] = {
        "guardianships": c.GUARDIANSHIPS,
        "consents": c.CONSENTS,
        "court_orders": c.COURT_ORDERS,
        "shares": c.SHARES,
        **changes,
    }
    return _facts(c.KAY, record, **relationships)


def test_consent_share_round_trip_is_allowed() -> None:
    assert decide(_kay()).basis is Basis.CONSENT


def test_revoked_share_is_denied() -> None:
    shares = (replace(c.SHARES[0], revoked_at=c.NOW - c.DAY),)
    decision = decide(_kay(shares=shares))
    assert not decision.allowed
    assert "revoked" in decision.reason


def test_revocation_and_withdrawal_take_effect_at_their_time() -> None:
    shares = (replace(c.SHARES[0], revoked_at=c.NOW + c.DAY),)
    consents = (replace(c.CONSENTS[0], withdrawn_at=c.NOW + c.DAY),)
    assert decide(_kay(shares=shares, consents=consents)).allowed
    shares = (replace(c.SHARES[0], revoked_at=c.NOW),)
    assert not decide(_kay(shares=shares)).allowed
    consents = (replace(c.CONSENTS[0], withdrawn_at=c.NOW),)
    assert not decide(_kay(consents=consents)).allowed


def test_share_not_listing_the_record_is_denied() -> None:
    shares = (replace(c.SHARES[0], record_ids=frozenset({"med-1"})),)
    assert not decide(_kay(shares=shares)).allowed


def test_share_made_for_someone_else_is_denied() -> None:
    shares = (replace(c.SHARES[0], recipient_id="hana"),)
    assert not decide(_kay(shares=shares)).allowed


def test_consent_naming_someone_else_is_denied() -> None:
    consents = (replace(c.CONSENTS[0], recipient_id="hana"),)
    decision = decide(_kay(consents=consents))
    assert not decision.allowed
    assert "another recipient" in decision.reason


def test_share_resting_on_a_consent_about_another_child_is_denied() -> None:
    consents = (replace(c.CONSENTS[0], child_id="maya"),)
    assert not decide(_kay(consents=consents)).allowed


def test_share_resting_on_a_missing_consent_is_denied() -> None:
    assert not decide(_kay(consents=())).allowed


def test_share_whose_basis_kind_does_not_match_its_row_is_denied() -> None:
    # The share says court order but its id is a consent's.
    shares = (replace(c.SHARES[0], basis=Basis.COURT_ORDER),)
    assert not decide(_kay(shares=shares)).allowed


def test_consent_not_yet_started_is_denied() -> None:
    consents = (replace(c.CONSENTS[0], valid_from=c.NOW + c.DAY),)
    assert not decide(_kay(consents=consents)).allowed


def _consent_for_everything(**changes: object) -> Consent:
    every = frozenset({"observation", "safeguarding", "correspondence", "medical"})
    return replace(c.CONSENTS[0], categories=every, **changes)


@pytest.mark.parametrize(
    "record", [c.SAFEGUARDING, c.WITHHELD], ids=["safeguarding", "withheld-from-guardians"]
)
def test_consent_cannot_reach_what_the_parent_cannot_read(record: RecordFacts) -> None:
    decision = decide(_kay(record, consents=(_consent_for_everything(),)))
    assert not decision.allowed
    assert "cannot cover this record" in decision.reason


def test_consent_from_a_restricted_parent_does_not_cover_the_restricted_category() -> None:
    consents = (_consent_for_everything(given_by="ms-patel"),)
    assert not decide(_kay(c.OBSERVATION, consents=consents)).allowed
    assert decide(_kay(c.MEDICAL, consents=consents)).allowed


def test_consent_from_someone_who_is_no_guardian_is_denied() -> None:
    consents = (replace(c.CONSENTS[0], given_by="ben"),)
    assert not decide(_kay(consents=consents)).allowed


def _gwen(record: RecordFacts = c.OBSERVATION, **changes: tuple[object, ...]) -> Facts:
    relationships: dict[str, tuple[object, ...]] = {
        "guardianships": c.GUARDIANSHIPS,
        "court_orders": c.COURT_ORDERS,
        "shares": c.SHARES,
        **changes,
    }
    return _facts(c.GWEN, record, **relationships)


def test_court_order_share_is_allowed_even_for_withheld_records() -> None:
    order = replace(c.COURT_ORDERS[1], categories=frozenset({"correspondence"}))
    share = replace(c.SHARES[4], record_ids=frozenset({"letter-1"}))
    decision = decide(_gwen(c.WITHHELD, court_orders=(order,), shares=(share,)))
    assert decision.basis is Basis.COURT_ORDER


@pytest.mark.parametrize(
    "order",
    [
        replace(c.COURT_ORDERS[1], categories=frozenset()),
        replace(c.COURT_ORDERS[1], subject_id="kay"),
        replace(c.COURT_ORDERS[1], effect="restrict_guardian"),
        replace(c.COURT_ORDERS[1], child_id="maya"),
        replace(c.COURT_ORDERS[1], valid_to=c.NOW),
        replace(c.COURT_ORDERS[1], valid_from=c.NOW + c.DAY),
    ],
    ids=[
        "no-category-discloses-nothing",
        "other-recipient",
        "restricting-not-disclosing",
        "other-child",
        "expired",
        "not-yet-in-force",
    ],
)
def test_court_order_share_that_does_not_fit_is_denied(order: CourtOrder) -> None:
    assert not decide(_gwen(court_orders=(order,))).allowed


def test_court_order_alone_without_share_is_denied() -> None:
    assert not decide(_gwen(shares=())).allowed


def test_mixed_bases_record_the_court_order_and_name_each_rule() -> None:
    group = replace(c.GROUP_PHOTO, category="observation")
    maya_order = CourtOrder(
        "co-maya", "maya", "disclose", "kay", frozenset({"observation"}), "FC-9",
        c.NOW - c.DAY, c.NOW + c.YEAR,
    )  # fmt: skip
    maya_share = Share(
        "sh-maya", "kay", Basis.COURT_ORDER, "co-maya", frozenset({"photo-2"}),
        c.NOW - c.DAY, c.NOW + c.YEAR, None,
    )  # fmt: skip
    facts = _kay(group, court_orders=(maya_order,), shares=(c.SHARES[0], maya_share))
    decision = decide(facts)
    assert (decision.allowed, decision.basis) == (True, Basis.COURT_ORDER)
    assert "child leo by share sh-kay on consent cn-kay" in decision.reason
    assert "child maya by share sh-maya on court order co-maya" in decision.reason
    assert "Recorded basis: court_order" in decision.reason


def test_decision_does_not_depend_on_the_order_children_are_listed() -> None:
    forward = decide(_facts(c.SARA, c.GROUP_PHOTO, assignments=c.ASSIGNMENTS))
    backward = decide(
        _facts(
            c.SARA,
            replace(c.GROUP_PHOTO, child_ids=("maya", "leo")),
            assignments=c.ASSIGNMENTS,
        )
    )
    assert forward == backward


def test_the_principal_kind_decides_which_rule_applies() -> None:
    """Rows that fit another kind of principal grant nothing."""
    kay_as_guardian = replace(c.KAY, kind=PrincipalKind.GUARDIAN)
    facts = _facts(kay_as_guardian, c.OBSERVATION, shares=c.SHARES, consents=c.CONSENTS)
    assert not decide(facts).allowed
    jones_as_staff = replace(c.MR_JONES, kind=PrincipalKind.STAFF)
    assert not decide(_facts(jones_as_staff, c.OBSERVATION, guardianships=c.GUARDIANSHIPS)).allowed
    amira_as_external = replace(c.AMIRA, kind=PrincipalKind.EXTERNAL)
    assert not decide(_facts(amira_as_external, c.OBSERVATION, assignments=c.ASSIGNMENTS)).allowed


@pytest.mark.parametrize(
    "build",
    [
        lambda: _facts(c.AMIRA, c.OBSERVATION, now=datetime(2026, 11, 22)),
        lambda: _assignment(valid_from=datetime(2026, 1, 1)),
        lambda: replace(c.CONSENTS[0], withdrawn_at=datetime(2026, 1, 1)),
        lambda: replace(c.SHARES[0], valid_to=datetime(2027, 1, 1)),
        lambda: replace(c.COURT_ORDERS[0], valid_from=datetime(2026, 1, 1)),
    ],
    ids=["now", "assignment", "consent", "share", "court-order"],
)
def test_naive_times_are_refused_when_facts_are_built(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build()


def test_unknown_court_order_effect_is_refused() -> None:
    with pytest.raises(ValueError, match="effect"):
        replace(c.COURT_ORDERS[0], effect="suspend")


@pytest.mark.parametrize("basis", [Basis.NONE, Basis.ASSIGNMENT, Basis.GUARDIANSHIP])
def test_share_on_another_basis_is_refused(basis: Basis) -> None:
    with pytest.raises(ValueError, match="consent or a court order"):
        replace(c.SHARES[0], basis=basis)
