"""The administrative calls of ``vault.Client``: people, their enrolment codes, and children.

Admin rights never imply read rights; these calls manage who may read, not what is read.
A new admin, or a code for someone who already has a device or rights, is not made at once:
the call returns a pending ``Proposal``, which takes effect when a second, independent person
approves it (``approve``; docs/decisions/0004-admins-cannot-read.md). Who may read which
child's records is set by ``vault.client.relationships``.
"""

from __future__ import annotations

from collections.abc import Sequence

from vault.client import wire
from vault.client.models import EnrolmentCode, Offboarded, Proposal
from vault.client.transport import KeyServiceTransport

ADMIN_ROLE = "admin"


class AdminCalls:
    """Mixed into ``Client``; every call is signed by the client's device."""

    _api: KeyServiceTransport

    def create_principal(
        self,
        *,
        kind: str,
        display_name: str,
        roles: Sequence[str] = (),
        organisation: str | None = None,
    ) -> str:
        """Add a staff member, guardian or external recipient; returns the principal id.

        A new admin needs a second person's approval: use ``propose_admin``.
        """
        if ADMIN_ROLE in roles:
            raise ValueError(
                "a new admin needs a second person's approval: use propose_admin(), "
                "not create_principal()"
            )
        body = wire.drop_none(
            {
                "kind": kind,
                "display_name": display_name,
                "roles": list(roles),
                "organisation": organisation,
            }
        )
        return self._api.post("/v1/admin/principals", wire.made_id("principal_id"), body)

    def propose_admin(self, *, display_name: str, roles: Sequence[str] = ()) -> Proposal:
        """Propose a new admin (with any other staff ``roles`` they also hold).

        Another admin approves it (with no other admin: a manager or DSL), and receives the
        new admin's first enrolment code in the approval's answer, to hand over.
        """
        body: dict[str, object] = {
            "kind": "staff",
            "display_name": display_name,
            "roles": sorted({ADMIN_ROLE, *roles}),
        }
        return self._api.post("/v1/admin/principals", wire.proposal, body)

    def enrolment_code(self, principal_id: str) -> EnrolmentCode | Proposal:
        """A single-use code (valid 24 h) with which the person enrols a device.

        For someone with no device and nothing to read yet, the code itself. For anyone else
        (a lost device, or rights already given) a proposal: the second person who approves
        it receives the code, and the person is told.
        """
        path = f"/v1/admin/principals/{principal_id}/enrolment-codes"
        return self._api.propose(path, wire.enrolment_code)

    def revoke_principal(self, principal_id: str) -> None:
        """Revoke the principal and every device it has, at once."""
        self._api.post(f"/v1/admin/principals/{principal_id}/revoke", wire.nothing)

    def offboard(self, principal_id: str, *, reason: str, dry_run: bool = False) -> Offboarded:
        """A member of staff leaves: end every current and future assignment of theirs,
        revoke every device and them, and void their open enrolment codes, in one step; the
        key service writes one audit entry listing what ended. Offboarding an admin, manager
        or DSL is announced to the other admins, managers and DSLs. Shares they created stay.

        ``dry_run`` returns what would end and changes nothing. Refused, with the service's
        reason: yourself (``AccessDenied``), the last active admin (``Conflict``), an unknown
        person (``NotFound``), and anyone who is not staff (``Conflict``: revoke a guardian or
        outside recipient with ``revoke_principal``).
        """
        return self._api.post(
            f"/v1/admin/principals/{principal_id}/offboard",
            wire.offboarded,
            {"reason": reason, "dry_run": dry_run},
        )

    def create_child(self, *, display_name: str, room: str | None = None) -> str:
        body = wire.drop_none({"display_name": display_name, "room": room})
        return self._api.post("/v1/admin/children", wire.made_id("child_id"), body)
