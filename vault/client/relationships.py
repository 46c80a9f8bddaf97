"""The relationships that give read rights, as calls of ``vault.Client``: staff assigned to a
child, guardians, consents and court orders.

A change that gives someone read rights (an assignment, a guardianship, a consent or court
order recorded by staff) is not made at once: the call returns a pending ``Proposal``, which
takes effect when a second, independent person approves it (``approve``;
docs/decisions/0004-admins-cannot-read.md). Ending one takes effect at once, except ending a
court order that keeps a guardian out, which gives that guardian their rights back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vault.client import wire
from vault.client.models import Proposal
from vault.client.transport import KeyServiceTransport


class RelationshipCalls:
    """Mixed into ``Client``; every call is signed by the client's device."""

    _api: KeyServiceTransport

    def assign(
        self,
        *,
        staff_id: str,
        child_id: str,
        role: str = "educator",
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
    ) -> Proposal:
        """Propose assigning a member of staff to a child (educator, manager or dsl)."""
        body = wire.drop_none(
            {
                "staff_id": staff_id,
                "child_id": child_id,
                "role": role,
                "valid_from": wire.wire_time(valid_from),
                "valid_to": wire.wire_time(valid_to),
            }
        )
        return self._api.post("/v1/admin/assignments", wire.proposal, body)

    def end_assignment(self, assignment_id: str) -> None:
        self._api.post(f"/v1/admin/assignments/{assignment_id}/end", wire.nothing)

    def add_guardian(
        self, *, guardian_id: str, child_id: str, parental_responsibility: bool = True
    ) -> Proposal:
        """Propose that a person is a child's guardian."""
        body: dict[str, object] = {
            "guardian_id": guardian_id,
            "child_id": child_id,
            "parental_responsibility": parental_responsibility,
        }
        return self._api.post("/v1/admin/guardianships", wire.proposal, body)

    def end_guardianship(self, guardianship_id: str, *, reason: str) -> None:
        """End a guardianship now (an admin, or the child's manager or DSL); it is kept."""
        path = f"/v1/guardianships/{guardianship_id}/end"
        self._api.post(path, wire.nothing, {"reason": reason})

    def record_consent(
        self,
        *,
        child_id: str,
        given_by: str,
        recipient_id: str,
        categories: Sequence[str],
        purpose: str,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        evidence_record_id: str | None = None,
        replaces: str | None = None,
    ) -> str | Proposal:
        """Record a guardian's written consent to share some categories with a recipient.

        A guardian recording their own consent: done, the consent id. The child's manager or
        DSL recording a consent they hold: a proposal a second person approves. ``replaces``
        names a consent this one corrects.
        """
        body = wire.drop_none(
            {
                "child_id": child_id,
                "given_by": given_by,
                "recipient_id": recipient_id,
                "categories": list(categories),
                "purpose": purpose,
                "valid_from": wire.wire_time(valid_from),
                "valid_to": wire.wire_time(valid_to),
                "evidence_record_id": evidence_record_id,
                "replaces": replaces,
            }
        )
        return self._api.propose("/v1/consents", wire.made_id("consent_id"), body)

    def withdraw_consent(self, consent_id: str, *, reason: str | None = None) -> None:
        """Withdraw a consent now (a guardian of the child, or its manager or DSL)."""
        path = f"/v1/consents/{consent_id}/withdraw"
        self._api.post(path, wire.nothing, wire.drop_none({"reason": reason}))

    def record_court_order(
        self,
        *,
        child_id: str,
        effect: str,
        subject_id: str,
        categories: Sequence[str],
        reference: str,
        valid_from: datetime,
        valid_to: datetime,
        evidence_record_id: str | None = None,
        replaces: str | None = None,
    ) -> str | Proposal:
        """Record a court order (the child's manager or DSL) that restricts a guardian (done
        at once: the order's id) or discloses to an outside recipient (a proposal a second
        person approves). ``replaces`` names an order this one corrects."""
        body = wire.drop_none(
            {
                "child_id": child_id,
                "effect": effect,
                "subject_id": subject_id,
                "categories": list(categories),
                "reference": reference,
                "valid_from": wire.wire_time(valid_from),
                "valid_to": wire.wire_time(valid_to),
                "evidence_record_id": evidence_record_id,
                "replaces": replaces,
            }
        )
        return self._api.propose("/v1/court-orders", wire.made_id("court_order_id"), body)

    def end_court_order(self, court_order_id: str, *, reason: str) -> Proposal | None:
        """End a court order now (None), or, for one that keeps a guardian out, propose
        ending it: that gives the guardian their rights back, so a second person approves."""
        path = f"/v1/court-orders/{court_order_id}/end"
        return self._api.propose(path, wire.nothing, {"reason": reason})
