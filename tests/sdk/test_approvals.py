"""The SDK's two-person calls against the real key service: a change that gives read rights
comes back as a typed ``Proposal`` (202), one made at once as its id (201); approving hands
the approver any code it made; a person's own devices and notifications are typed.

Who may approve what is the service's rule, tested in tests/keyservice and tests/e2e.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.sdk.conftest import Forward, Office, relay
from vault.client import Client, EnrolmentCode, Proposal
from vault.errors import Conflict, NotFound


def test_assign_and_add_guardian_are_proposals(office: Office) -> None:
    admin, child = office.admin, office.child()
    staff = office.principal(roles=("dsl",))
    start = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
    proposal = admin.assign(staff_id=staff, child_id=child, role="dsl", valid_from=start)
    assert isinstance(proposal, Proposal)
    assert proposal.pending and proposal.state == "pending"
    assert proposal.action == "assignment.create"
    assert (proposal.child_id, proposal.beneficiary_id) == (child, staff)
    assert proposal.payload["valid_from"] == "2026-09-01T08:30:00Z"
    assert proposal.proposed_by == admin.identity.principal_id
    assert proposal.expires_at - proposal.proposed_at == timedelta(days=14)
    assert proposal.result_id is None and proposal.enrolment_code is None

    guardian = admin.add_guardian(
        guardian_id=office.principal(kind="guardian", roles=()), child_id=child
    )
    assert guardian.action == "guardianship.create" and guardian.pending


def test_a_proposal_is_approved_by_someone_else(office: Office) -> None:
    proposer, approver = office.admin, office.approver
    proposal = proposer.assign(staff_id=office.principal(), child_id=office.child())

    with pytest.raises(NotFound):
        proposer.approve(proposal.proposal_id)
    assert proposal.proposal_id in {p.proposal_id for p in approver.proposals()}
    assert approver.proposal(proposal.proposal_id) == proposal

    decided = approver.approve(proposal.proposal_id, reason="rota for the autumn")
    assert decided.state == "approved" and not decided.pending
    assert decided.decided_by == approver.identity.principal_id
    assert decided.decided_at is not None
    assert decided.reason == "rota for the autumn"
    assert decided.result_id is not None
    assert decided.enrolment_code is None
    with pytest.raises(NotFound):
        approver.approve(proposal.proposal_id)


def test_an_approval_names_what_it_was_shown_and_a_change_since_is_a_conflict(
    office: Office,
) -> None:
    proposal = office.admin.assign(staff_id=office.principal(), child_id=office.child())
    seen = office.approver.proposal(proposal.proposal_id)
    assert seen.beneficiary_vouched_by == ()
    # As if the admin's code for the newcomer had appeared after the approver looked.
    since = replace(seen, beneficiary_vouched_by=(office.admin.identity.principal_id,))
    with pytest.raises(Conflict):
        office.approver.approve(proposal.proposal_id, seen=since)
    assert office.approver.proposal(proposal.proposal_id).pending
    assert office.approver.approve(proposal.proposal_id, seen=seen).state == "approved"


def test_reject_by_another_and_withdraw_by_the_proposer(office: Office) -> None:
    admin, child = office.admin, office.child()
    rejected = office.approver.reject(
        admin.assign(staff_id=office.principal(), child_id=child).proposal_id
    )
    assert rejected.state == "rejected"
    withdrawn = admin.reject(admin.assign(staff_id=office.principal(), child_id=child).proposal_id)
    assert withdrawn.state == "cancelled"


def test_create_principal_refuses_an_admin_without_asking(office: Office) -> None:
    sent: list[httpx.Request] = []

    def count(request: httpx.Request, forward: Forward) -> httpx.Response:
        sent.append(request)
        return forward(request)

    admin = Client(office.admin.identity, transport=relay(count))
    with pytest.raises(ValueError, match="propose_admin"):
        admin.create_principal(kind="staff", display_name="Eve", roles=["manager", "admin"])
    assert sent == [], "no request is sent"


def test_an_approved_admin_gets_a_code_the_approver_receives(office: Office) -> None:
    proposer, approver = office.admin, office.approver
    proposal = proposer.propose_admin(display_name="Third Admin", roles=["manager"])
    assert proposal.action == "admin.create"
    assert proposal.payload["roles"] == ["admin", "manager"]
    assert proposal.beneficiary_id is None

    decided = approver.approve(proposal.proposal_id)
    code = decided.enrolment_code
    assert isinstance(code, EnrolmentCode)
    assert code.expires_at.tzinfo is not None
    assert code.code not in repr(decided), "a code is never in a repr a log could hold"
    new_admin, identity = Client.enrol(office.base_url, code.code, "admin laptop")
    assert identity.principal_id == decided.result_id
    assert "admin" in new_admin.whoami().roles
    new_admin.close()


def test_enrolment_code_is_a_code_or_a_proposal(office: Office, client: Client) -> None:
    fresh = office.admin.enrolment_code(office.principal())
    assert isinstance(fresh, EnrolmentCode)
    assert fresh.expires_at > datetime.now(UTC)

    recovery = office.admin.enrolment_code(client.identity.principal_id)
    assert isinstance(recovery, Proposal)
    assert recovery.action == "device.enrol"
    assert recovery.beneficiary_id == client.identity.principal_id


def test_consents_and_orders_are_recorded_or_proposed(office: Office) -> None:
    manager = office.enrol(roles=("manager",))
    child = office.child_of(manager, role="manager")
    guardian = office.enrol(kind="guardian", roles=())
    guardianship = office.add_guardian(guardian, child)
    recipient = office.principal(kind="external", roles=())

    consent: dict[str, Any] = {
        "child_id": child,
        "given_by": guardian.identity.principal_id,
        "recipient_id": recipient,
        "categories": ["medical"],
        "purpose": "referral",
    }
    own = guardian.record_consent(**consent)
    assert isinstance(own, str)
    held = manager.record_consent(**consent, replaces=own)
    assert isinstance(held, Proposal)
    assert held.payload["replaces"] == own
    guardian.withdraw_consent(own, reason="the family asked")

    now = datetime.now(UTC)
    window = {"valid_from": now - timedelta(days=1), "valid_to": now + timedelta(days=365)}
    restrict = manager.record_court_order(
        child_id=child,
        effect="restrict_guardian",
        subject_id=guardian.identity.principal_id,
        categories=["medical"],
        reference="FC-1",
        **window,
    )
    assert isinstance(restrict, str)
    disclose = manager.record_court_order(
        child_id=child,
        effect="disclose",
        subject_id=recipient,
        categories=["medical"],
        reference="FC-2",
        **window,
    )
    assert isinstance(disclose, Proposal) and disclose.action == "court_order.create"

    ending = manager.end_court_order(restrict, reason="order discharged")
    assert isinstance(ending, Proposal)
    assert ending.action == "court_order.end"
    assert ending.payload == {"court_order_id": restrict, "reason": "order discharged"}
    disclosing = office.approved(disclose)
    assert manager.end_court_order(disclosing, reason="expired early") is None
    manager.end_guardianship(guardianship, reason="residence order")
    for person in (manager, guardian):
        person.close()


def test_own_devices_codes_and_notifications(office: Office, client: Client) -> None:
    issued = client.add_device_code()
    second, identity = Client.enrol(office.base_url, issued.code, "phone")
    assert identity.principal_id == client.identity.principal_id

    listed = client.devices()
    assert {d.device_id for d in listed} == {client.identity.device_id, identity.device_id}
    assert [d.device_id for d in listed if d.current] == [client.identity.device_id]
    assert all(d.created_at.tzinfo is not None and d.revoked_at is None for d in listed)
    assert {d.origin for d in listed} == {"first", "added"}

    # A code someone else approved for this person: they are told, on every device.
    recovery = office.admin.enrolment_code(client.identity.principal_id)
    assert isinstance(recovery, Proposal)
    code = office.approver.approve(recovery.proposal_id).enrolment_code
    assert code is not None
    recovered, third = Client.enrol(office.base_url, code.code, "recovered laptop")
    notices = client.notifications()
    assert [n.kind for n in notices] == ["device.recovered", "device.recovery_approved"]
    notice = notices[0]
    assert notice.at.tzinfo is not None
    assert abs(notice.at - datetime.now(UTC)) < timedelta(minutes=5)
    assert notice.detail["device_id"] == third.device_id

    client.revoke_device(identity.device_id)
    revoked = {d.device_id: d.revoked_at for d in client.devices()}
    assert revoked[identity.device_id] is not None
    assert revoked[client.identity.device_id] is None
    for other in (second, recovered):
        other.close()
