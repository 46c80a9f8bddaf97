"""The write rules: who may approve a change that gives read rights (keyservice/policy/writes.py).

Named after the attack each rule stops (issue 12, finding 1); each case fails if its rule is
taken out of ``may_approve``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from keyservice.policy.writes import (
    Person,
    Proposal,
    ProposalAction,
    may_approve,
    may_record_for_child,
)

ADMIN = Person("admin", "staff", frozenset({"admin"}), frozenset({"admin"}))
OTHER_ADMIN = Person("admin2", "staff", frozenset({"admin"}), frozenset({"admin2"}))
# A stand-in: an account whose enrolment code the first admin saw.
STAND_IN = Person(
    "stand-in", "staff", frozenset({"manager", "admin"}), frozenset({"stand-in", "admin"})
)
CHILD_DSL = Person(
    "dsl", "staff", frozenset({"dsl"}), frozenset({"dsl"}), child_roles=frozenset({"dsl"})
)
OTHER_DSL = Person("dsl2", "staff", frozenset({"dsl"}), frozenset({"dsl2"}))
EDUCATOR = Person(
    "edu", "staff", frozenset({"educator"}), frozenset({"edu"}), child_roles=frozenset({"educator"})
)
GUARDIAN = Person("parent", "guardian", frozenset(), frozenset({"parent"}))


def _assignment(beneficiary_circle: frozenset[str] = frozenset({"new", "admin"})) -> Proposal:
    return Proposal(
        action=ProposalAction.ASSIGNMENT_CREATE,
        proposer=ADMIN,
        beneficiary_id="new",
        beneficiary_circle=beneficiary_circle,
        other_admins=1,
    )


@pytest.mark.parametrize(
    ("approver", "reason"),
    [
        (ADMIN, "own_proposal"),
        (replace(OTHER_ADMIN, principal_id="new", circle=frozenset({"new"})), "beneficiary"),
        (STAND_IN, "same_circle_as_proposer"),
        (GUARDIAN, "not_staff"),
        (OTHER_DSL, "no_standing"),
        (EDUCATOR, "no_standing"),
    ],
)
def test_who_may_not_approve_an_assignment(approver: Person, reason: str) -> None:
    assert may_approve(_assignment(), approver).reason == reason


@pytest.mark.parametrize("approver", [OTHER_ADMIN, CHILD_DSL])
def test_an_independent_admin_or_the_childs_dsl_approves(approver: Person) -> None:
    assert may_approve(_assignment(), approver).allowed


def test_an_approver_who_saw_the_beneficiarys_code_may_not_approve() -> None:
    proposal = _assignment(beneficiary_circle=frozenset({"new", "admin2"}))
    assert may_approve(proposal, OTHER_ADMIN).reason == "same_circle_as_beneficiary"


def test_a_stand_in_proposing_for_its_maker_is_refused_to_the_maker() -> None:
    proposal = replace(_assignment(), proposer=STAND_IN)
    assert may_approve(proposal, ADMIN).reason == "same_circle_as_proposer"


def test_a_single_admins_second_admin_is_approved_by_a_manager_or_dsl() -> None:
    proposal = Proposal(
        action=ProposalAction.ADMIN_CREATE,
        proposer=ADMIN,
        beneficiary_id=None,
        beneficiary_circle=frozenset(),
        other_admins=0,
    )
    assert may_approve(proposal, OTHER_DSL).allowed
    assert may_approve(replace(proposal, other_admins=1), OTHER_DSL).reason == "no_standing"
    assert may_approve(proposal, EDUCATOR).reason == "no_standing"


def test_only_a_lead_of_the_child_records_orders_and_consents() -> None:
    assert may_record_for_child(CHILD_DSL)
    assert not may_record_for_child(OTHER_DSL)
    assert not may_record_for_child(ADMIN)
    assert not may_record_for_child(EDUCATOR)


def _batch(beneficiary_circle: frozenset[str]) -> Proposal:
    """A room import giving several people rights: no single beneficiary, their circles
    joined (keyservice/catalog/proposals.py::facts)."""
    return Proposal(
        action=ProposalAction.ROOMS_IMPORT,
        proposer=ADMIN,
        beneficiary_id=None,
        beneficiary_circle=beneficiary_circle,
    )


def test_a_room_import_is_approved_only_by_an_independent_admin() -> None:
    assert may_approve(_batch(frozenset({"s1", "s2"})), OTHER_ADMIN).allowed
    assert may_approve(_batch(frozenset({"s1"})), ADMIN).reason == "own_proposal"
    # A DSL, even of a child in the room, is no admin: a batch is an admin's to approve.
    assert may_approve(_batch(frozenset({"s1"})), CHILD_DSL).reason == "no_standing"
    # The approver among the people it gives rights to, or one who saw a code of theirs.
    assert may_approve(_batch(frozenset({"s1", "admin2"})), OTHER_ADMIN).reason == (
        "same_circle_as_beneficiary"
    )
