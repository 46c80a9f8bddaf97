"""Proposals and their approval by a second person, as calls of ``vault.Client``.

Anyone may list the proposals they made and those waiting for them; an approver must be
staff, neither the proposer nor the person it is for, independent of both (nobody who saw an
enrolment code of one of them), and have standing (an admin, or a manager or DSL of the
child). A proposal the caller may not decide is ``NotFound``, like one that does not exist.
"""

from __future__ import annotations

from vault.client import wire
from vault.client.models import Proposal
from vault.client.transport import KeyServiceTransport


class ApprovalCalls:
    """Mixed into ``Client``; every call is signed by the client's device."""

    _api: KeyServiceTransport

    def proposals(self) -> list[Proposal]:
        """Pending proposals this person may approve, then the ones they made."""
        return self._api.get("/v1/proposals", wire.proposals)

    def proposal(self, proposal_id: str) -> Proposal:
        return self._api.get(f"/v1/proposals/{proposal_id}", wire.proposal)

    def approve(
        self,
        proposal_id: str,
        *,
        reason: str | None = None,
        seen: Proposal | None = None,
    ) -> Proposal:
        """Approve and so apply a proposal; the answer names what it made (``result_id``) and
        carries ``enrolment_code`` when approving made one for the approver to hand over.

        ``seen``: the proposal as the approver was shown it. The service then refuses
        (``Conflict``) if whoever saw the beneficiary's enrolment codes changed since."""
        vouched = list(seen.beneficiary_vouched_by) if seen is not None else None
        body = wire.drop_none({"reason": reason, "beneficiary_vouched_by": vouched})
        return self._api.post(f"/v1/proposals/{proposal_id}/approve", wire.proposal, body)

    def reject(self, proposal_id: str, *, reason: str | None = None) -> Proposal:
        """Turn a proposal down (state ``rejected``), or withdraw one's own (``cancelled``)."""
        body = wire.drop_none({"reason": reason})
        return self._api.post(f"/v1/proposals/{proposal_id}/reject", wire.proposal, body)
