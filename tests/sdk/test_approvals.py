"""The SDK's two-person calls against the stand-in key service: a change that gives read
rights comes back as a typed ``Proposal`` (202), one made at once as its id (201); approving
hands the approver any code it made; a person's own devices and notifications are typed.

Who may approve what is the real service's rule, tested in tests/keyservice and tests/e2e.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.sdk.conftest import enrolled_client
from tests.sdk.fake_keyservice import BASE, FakeKeyService
from vault.client import Client, EnrolmentCode, Proposal
from vault.errors import NotFound


def test_assign_and_add_guardian_are_proposals(client: Client, child: str) -> None:
    staff = "a" * 32
    start = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
    proposal = client.assign(staff_id=staff, child_id=child, role="dsl", valid_from=start)
    assert isinstance(proposal, Proposal)
    assert proposal.pending and proposal.state == "pending"
    assert proposal.action == "assignment.create"
    assert (proposal.child_id, proposal.beneficiary_id) == (child, staff)
    assert proposal.payload["valid_from"] == "2026-09-01T08:30:00Z"
    assert proposal.proposed_by == client.identity.principal_id
    assert proposal.expires_at - proposal.proposed_at == timedelta(days=14)
    assert proposal.result_id is None and proposal.enrolment_code is None

    guardian = client.add_guardian(guardian_id="b" * 32, child_id=child)
    assert guardian.action == "guardianship.create" and guardian.pending


def test_a_proposal_is_approved_by_someone_else(service: FakeKeyService, child: str) -> None:
    proposer, approver = enrolled_client(service), enrolled_client(service)
    proposal = proposer.assign(staff_id="a" * 32, child_id=child)

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


def test_reject_by_another_and_withdraw_by_the_proposer(
    service: FakeKeyService, client: Client, child: str
) -> None:
    other = enrolled_client(service)
    rejected = other.reject(client.assign(staff_id="a" * 32, child_id=child).proposal_id)
    assert rejected.state == "rejected"
    withdrawn = client.reject(client.assign(staff_id="a" * 32, child_id=child).proposal_id)
    assert withdrawn.state == "cancelled"


def test_create_principal_refuses_an_admin_without_asking(
    service: FakeKeyService, client: Client
) -> None:
    before = service.requests
    with pytest.raises(ValueError, match="propose_admin"):
        client.create_principal(kind="staff", display_name="Eve", roles=["manager", "admin"])
    assert service.requests == before, "no request is sent"


def test_an_approved_admin_gets_a_code_the_approver_receives(service: FakeKeyService) -> None:
    proposer, approver = enrolled_client(service), enrolled_client(service)
    proposal = proposer.propose_admin(display_name="Second Admin", roles=["manager"])
    assert proposal.action == "admin.create"
    assert proposal.payload["roles"] == ["admin", "manager"]
    assert proposal.beneficiary_id is None

    decided = approver.approve(proposal.proposal_id)
    code = decided.enrolment_code
    assert isinstance(code, EnrolmentCode)
    assert code.expires_at.tzinfo is not None
    assert code.code not in repr(decided), "a code is never in a repr a log could hold"
    transport = service.transport()
    new_admin, identity = Client.enrol(BASE, code.code, "admin laptop", transport=transport)
    assert identity.principal_id == decided.result_id
    new_admin.close()


def test_enrolment_code_is_a_code_or_a_proposal(service: FakeKeyService, client: Client) -> None:
    fresh = client.enrolment_code("c" * 32)
    assert isinstance(fresh, EnrolmentCode)
    assert fresh.expires_at > datetime(2026, 1, 1, tzinfo=UTC)

    holder = enrolled_client(service)
    recovery = client.enrolment_code(holder.identity.principal_id)
    assert isinstance(recovery, Proposal)
    assert recovery.action == "device.enrol"
    assert recovery.beneficiary_id == holder.identity.principal_id


def test_consents_and_orders_are_recorded_or_proposed(client: Client, child: str) -> None:
    own = client.record_consent(
        child_id=child,
        given_by=client.identity.principal_id,
        recipient_id="d" * 32,
        categories=["medical"],
        purpose="referral",
    )
    assert isinstance(own, str)
    held = client.record_consent(
        child_id=child,
        given_by="e" * 32,
        recipient_id="d" * 32,
        categories=["medical"],
        purpose="referral",
        replaces=own,
    )
    assert isinstance(held, Proposal)
    assert held.payload["replaces"] == own
    client.withdraw_consent(own, reason="the family asked")

    window = {
        "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
        "valid_to": datetime(2027, 1, 1, tzinfo=UTC),
    }
    restrict = client.record_court_order(
        child_id=child,
        effect="restrict_guardian",
        subject_id="e" * 32,
        categories=["medical"],
        reference="FC-1",
        **window,
    )
    assert isinstance(restrict, str)
    disclose = client.record_court_order(
        child_id=child,
        effect="disclose",
        subject_id="d" * 32,
        categories=["medical"],
        reference="FC-2",
        **window,
    )
    assert isinstance(disclose, Proposal) and disclose.action == "court_order.create"

    ending = client.end_court_order(restrict, reason="order discharged")
    assert isinstance(ending, Proposal)
    assert ending.action == "court_order.end"
    assert ending.payload == {"court_order_id": restrict, "reason": "order discharged"}
    assert client.end_court_order("f" * 32, reason="expired early") is None
    client.end_guardianship("f" * 32, reason="residence order")


def test_own_devices_codes_and_notifications(service: FakeKeyService, client: Client) -> None:
    issued = client.add_device_code()
    second, identity = Client.enrol(BASE, issued.code, "phone", transport=service.transport())
    assert identity.principal_id == client.identity.principal_id

    listed = client.devices()
    assert {d.device_id for d in listed} == {client.identity.device_id, identity.device_id}
    assert [d.device_id for d in listed if d.current] == [client.identity.device_id]
    assert all(d.created_at.tzinfo is not None and d.revoked_at is None for d in listed)

    service.notifications[identity.principal_id] = [
        {
            "notification_id": "1" * 32,
            "at": "2026-11-22T18:05:00Z",
            "kind": "device.recovered",
            "detail": {"device_id": identity.device_id, "approved_by": None},
        }
    ]
    (notice,) = client.notifications()
    assert notice.kind == "device.recovered"
    assert notice.at == datetime(2026, 11, 22, 18, 5, tzinfo=UTC)
    assert notice.detail["device_id"] == identity.device_id

    client.revoke_device(identity.device_id)
    assert [d.device_id for d in client.devices()] == [client.identity.device_id]
    second.close()
