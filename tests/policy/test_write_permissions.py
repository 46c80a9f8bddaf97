"""Who may make each change, and which changes wait for a second person
(keyservice/policy/writes.py::may_write; the table in docs/POLICY.md).

Each refusal is a named vector: it fails if its rule is loosened.
"""

from __future__ import annotations

import pytest

from keyservice.policy.writes import Change, Person, Write, may_write

ADMIN = Person("admin", "staff", frozenset({"admin"}), frozenset({"admin"}))
LEAD = Person(
    "dsl", "staff", frozenset({"dsl"}), frozenset({"dsl"}), child_roles=frozenset({"dsl"})
)
# Assigned to the child as DSL, but no longer holding the DSL role.
FORMER_LEAD = Person(
    "was-dsl", "staff", frozenset({"educator"}), frozenset({"was-dsl"}), frozenset({"dsl"})
)
# A DSL, of other children.
LEAD_ELSEWHERE = Person("dsl2", "staff", frozenset({"dsl"}), frozenset({"dsl2"}))
EDUCATOR = Person(
    "edu", "staff", frozenset({"educator"}), frozenset({"edu"}), frozenset({"educator"})
)
PARENT = Person("parent", "guardian", frozenset(), frozenset({"parent"}))
AGENCY = Person("agency", "external", frozenset(), frozenset({"agency"}))

ADMIN_CHANGES = [
    Change.CHILD_CREATE,
    Change.CHILD_KEY_ROTATE,
    Change.PRINCIPAL_CREATE,
    Change.PRINCIPAL_REVOKE,
    Change.PRINCIPAL_OFFBOARD,
    Change.ENROLMENT_CODE,
    Change.ASSIGNMENT_CREATE,
    Change.ASSIGNMENT_END,
    Change.GUARDIANSHIP_CREATE,
    Change.ROOM_CREATE,
    Change.ROOMS_IMPORT,
]


@pytest.mark.parametrize("change", ADMIN_CHANGES)
@pytest.mark.parametrize("actor", [LEAD, EDUCATOR, PARENT, AGENCY])
def test_administration_is_for_admins_only(change: Change, actor: Person) -> None:
    verdict = may_write(Write(change, actor))
    assert not verdict.allowed and verdict.reason == "not_admin"


@pytest.mark.parametrize("change", [Change.ASSIGNMENT_CREATE, Change.GUARDIANSHIP_CREATE])
def test_an_admin_only_proposes_what_gives_read_rights(change: Change) -> None:
    verdict = may_write(Write(change, ADMIN))
    assert verdict.allowed and verdict.needs_approval


@pytest.mark.parametrize(
    "change",
    [Change.PRINCIPAL_CREATE, Change.ENROLMENT_CODE, Change.ASSIGNMENT_END, Change.ROOMS_IMPORT],
)
def test_admin_changes_wait_exactly_when_they_give_rights(change: Change) -> None:
    assert not may_write(Write(change, ADMIN)).needs_approval
    assert may_write(Write(change, ADMIN, gives_rights=True)).needs_approval


def test_an_admin_offboards_a_leaver_alone_and_at_once() -> None:
    # It only takes rights away: no second person (its announcement is the route's).
    verdict = may_write(Write(Change.PRINCIPAL_OFFBOARD, ADMIN))
    assert verdict.allowed and not verdict.needs_approval


@pytest.mark.parametrize("change", [Change.CONSENT_CREATE, Change.COURT_ORDER_CREATE])
@pytest.mark.parametrize("actor", [ADMIN, LEAD_ELSEWHERE, FORMER_LEAD, EDUCATOR, AGENCY])
def test_orders_and_staff_consents_only_by_the_childs_lead(change: Change, actor: Person) -> None:
    verdict = may_write(Write(change, actor))
    assert not verdict.allowed and verdict.reason == "no_standing"


def test_a_parents_own_consent_is_at_once_anyone_elses_is_refused_or_waits() -> None:
    own = may_write(Write(Change.CONSENT_CREATE, PARENT, own=True, guardian_of_child=True))
    assert own.allowed and not own.needs_approval
    # A parent of another child, or one giving consent in someone else's name.
    assert not may_write(Write(Change.CONSENT_CREATE, PARENT, own=True)).allowed
    assert not may_write(Write(Change.CONSENT_CREATE, PARENT, guardian_of_child=True)).allowed
    staff = may_write(Write(Change.CONSENT_CREATE, LEAD))
    assert staff.allowed and staff.needs_approval


def test_a_lead_restricts_at_once_and_discloses_or_lets_back_in_with_a_second_person() -> None:
    restrict = may_write(Write(Change.COURT_ORDER_CREATE, LEAD))
    assert restrict.allowed and not restrict.needs_approval
    for change in (Change.COURT_ORDER_CREATE, Change.COURT_ORDER_END):
        verdict = may_write(Write(change, LEAD, gives_rights=True))
        assert verdict.allowed and verdict.needs_approval


@pytest.mark.parametrize("change", [Change.CONSENT_WITHDRAW, Change.DISCLOSURES_READ])
def test_withdrawing_and_the_disclosure_log_for_the_childs_parents_and_leads(
    change: Change,
) -> None:
    assert may_write(Write(change, PARENT, guardian_of_child=True)).allowed
    assert may_write(Write(change, LEAD)).allowed
    for actor in (PARENT, ADMIN, EDUCATOR, LEAD_ELSEWHERE, FORMER_LEAD, AGENCY):
        assert not may_write(Write(change, actor)).allowed


def test_a_guardianship_ends_by_an_admin_or_the_childs_lead() -> None:
    assert may_write(Write(Change.GUARDIANSHIP_END, ADMIN)).allowed
    assert may_write(Write(Change.GUARDIANSHIP_END, LEAD)).allowed
    for actor in (PARENT, EDUCATOR, LEAD_ELSEWHERE):
        assert not may_write(Write(Change.GUARDIANSHIP_END, actor)).allowed


def test_a_device_is_revoked_by_its_owner_or_an_admin() -> None:
    assert may_write(Write(Change.DEVICE_REVOKE, PARENT, own=True)).allowed
    assert may_write(Write(Change.DEVICE_REVOKE, ADMIN)).allowed
    assert not may_write(Write(Change.DEVICE_REVOKE, LEAD)).allowed


def test_only_a_manager_or_dsl_shreds_and_an_admin_role_alone_does_not() -> None:
    assert may_write(Write(Change.RECORD_DELETE, LEAD)).allowed
    assert may_write(Write(Change.RECORD_DELETE, LEAD_ELSEWHERE)).allowed  # if they may read
    for actor in (ADMIN, EDUCATOR, PARENT):
        assert not may_write(Write(Change.RECORD_DELETE, actor)).allowed


@pytest.mark.parametrize("change", [Change.SHARE_CREATE, Change.SHARE_REVOKE])
@pytest.mark.parametrize("actor", [ADMIN, EDUCATOR, LEAD_ELSEWHERE, FORMER_LEAD, PARENT, AGENCY])
def test_shares_are_never_made_or_revoked_by_an_admin_role_an_educator_or_outsiders(
    change: Change, actor: Person
) -> None:
    verdict = may_write(Write(change, actor, guardian_of_child=actor is PARENT))
    assert not verdict.allowed and verdict.reason == "no_standing"


@pytest.mark.parametrize("change", [Change.SHARE_CREATE, Change.SHARE_REVOKE])
def test_the_childs_lead_shares_and_revokes_at_once(change: Change) -> None:
    # The basis (a consent or a disclosing order) already waited for a second person.
    verdict = may_write(Write(change, LEAD))
    assert verdict.allowed and not verdict.needs_approval


@pytest.mark.parametrize("change", list(Change))
def test_every_change_has_a_rule(change: Change) -> None:
    may_write(Write(change, ADMIN))
