"""Who may change who can read: record a relationship at once, propose it, or approve it.

The release rules (rules.py) say who reads; these say who may change that. A change that
gives someone read rights (an assignment, a guardianship, a consent's or a disclosing court
order's recipient, ending an order that kept a guardian out, a new admin, a device for a
person who already has rights) takes effect only when a second person approves it, and that
person must be independent of both the proposer and the beneficiary: nobody alone, with any
number of accounts whose enrolment codes they saw, gets a record released
(docs/decisions/0004-admins-cannot-read.md).

A person's *circle* is themselves plus everyone who saw an enrolment code one of their active
devices was enrolled with (``devices.vouched_by``). Whoever saw a code could have enrolled a
device of their own with it, so the circle is everyone who might act as that person.
Approver and proposer must have disjoint circles, and so must approver and beneficiary.

Pure: facts in, a verdict with a reason out; keyservice/catalog/people.py loads the facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

LEAD_ROLES = frozenset({"manager", "dsl"})


class ProposalAction(StrEnum):
    """Changes that give read rights, and so wait for a second person."""

    ASSIGNMENT_CREATE = "assignment.create"
    GUARDIANSHIP_CREATE = "guardianship.create"
    CONSENT_CREATE = "consent.create"
    COURT_ORDER_CREATE = "court_order.create"  # a disclosing order
    COURT_ORDER_END = "court_order.end"  # of an order that restricts a guardian
    ADMIN_CREATE = "admin.create"
    DEVICE_ENROL = "device.enrol"  # a code for someone who has a device or read rights
    # A batch of room memberships or assignments (one import, or one room change) that gives
    # someone read rights; approved by an admin (docs/decisions/0018-rooms-and-imports.md).
    ROOMS_IMPORT = "rooms.import"


# Changes about one child: approved by a lead of that child or by an admin.
CHILD_ACTIONS = frozenset(
    {
        ProposalAction.ASSIGNMENT_CREATE,
        ProposalAction.GUARDIANSHIP_CREATE,
        ProposalAction.CONSENT_CREATE,
        ProposalAction.COURT_ORDER_CREATE,
        ProposalAction.COURT_ORDER_END,
    }
)


@dataclass(frozen=True)
class Person:
    """Someone acting on a proposal, as far as these rules care.

    ``child_roles``: the roles of their current assignments to the proposal's child (empty for
    changes not about a child). ``circle``: themselves and whoever vouched for their devices.
    """

    principal_id: str
    kind: str
    roles: frozenset[str]
    circle: frozenset[str]
    child_roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.kind == "staff" and "admin" in self.roles

    @property
    def is_lead_of_child(self) -> bool:
        """A manager or DSL currently assigned to the child in that role, a role they still
        hold."""
        return self.kind == "staff" and bool(self.child_roles & self.roles & LEAD_ROLES)

    @property
    def holds_lead_role(self) -> bool:
        return self.kind == "staff" and bool(self.roles & LEAD_ROLES)


@dataclass(frozen=True)
class Proposal:
    action: ProposalAction
    proposer: Person
    beneficiary_id: str | None
    # The beneficiary and whoever vouched for their devices; empty when there is none yet.
    beneficiary_circle: frozenset[str]
    # Active admins other than the proposer: with none, a manager or DSL approves a new admin.
    other_admins: int = 0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    # A short code for the audit (``own_proposal``, ``same_circle``…), "" when allowed.
    reason: str = ""

    @classmethod
    def allow(cls) -> Verdict:
        return cls(True)

    @classmethod
    def deny(cls, reason: str) -> Verdict:
        return cls(False, reason)


class Change(StrEnum):
    """The writes these rules decide; each value is the audit action of doing it."""

    CHILD_CREATE = "child.create"
    CHILD_KEY_ROTATE = "child_key.rotate"
    PRINCIPAL_CREATE = "principal.create"
    PRINCIPAL_REVOKE = "principal.revoke"
    # A member of staff who leaves: assignments end, devices, codes and the person revoked.
    PRINCIPAL_OFFBOARD = "principal.offboard"
    ENROLMENT_CODE = "enrolment_code.issue"
    DEVICE_REVOKE = "device.revoke"
    ASSIGNMENT_CREATE = "assignment.create"
    ASSIGNMENT_END = "assignment.end"
    ROOM_CREATE = "room.create"
    # Room memberships and assignments, one or a batch: waits when it gives read rights.
    ROOMS_IMPORT = "rooms.import"
    GUARDIANSHIP_CREATE = "guardianship.create"
    GUARDIANSHIP_END = "guardianship.end"
    CONSENT_CREATE = "consent.create"
    CONSENT_WITHDRAW = "consent.withdraw"
    COURT_ORDER_CREATE = "court_order.create"
    COURT_ORDER_END = "court_order.end"
    RECORD_DELETE = "record.delete"
    SHARE_CREATE = "share.create"
    SHARE_REVOKE = "share.revoke"
    DISCLOSURES_READ = "disclosures.read"
    # Retention and shredding (docs/decisions/0019-retention-and-shredding.md).
    CHILD_DATES = "child.dates"
    LEGAL_HOLD_SET = "legal_hold.set"
    LEGAL_HOLD_LIFT = "legal_hold.lift"
    SHRED_REQUEST = "shred.request"
    SHRED_APPROVE = "shred.approve"
    SHRED_CANCEL = "shred.cancel"


# Administration: people, children and keys, never record content or who reads it alone.
_ADMIN_ONLY = frozenset(
    {
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
    }
)
# Proposed by an admin, whatever the details: each gives someone read rights.
_ALWAYS_SECOND_PERSON = frozenset({Change.ASSIGNMENT_CREATE, Change.GUARDIANSHIP_CREATE})
# Recorded by the child's manager or DSL (someone assigned to the child in that role).
_LEAD_OF_CHILD = frozenset(
    {Change.CONSENT_CREATE, Change.COURT_ORDER_CREATE, Change.COURT_ORDER_END}
)
# A legal hold and shredding: decided by the child's manager or DSL only.
_SHREDDING = frozenset(
    {
        Change.LEGAL_HOLD_SET,
        Change.LEGAL_HOLD_LIFT,
        Change.SHRED_REQUEST,
        Change.SHRED_APPROVE,
        Change.SHRED_CANCEL,
    }
)


@dataclass(frozen=True)
class Write:
    """A change someone asks for, with what the rules need to know about it.

    ``actor``'s ``child_roles`` are their assignments to the child the change is about.
    ``own``: the change is about the actor themselves as its subject may be (their own device;
    a guardian's own consent). ``guardian_of_child``: the actor is a guardian with parental
    responsibility of that child. ``gives_rights``: the change lets someone read more (an
    admin role, a code for someone who has a device or rights, a disclosing order, a
    correction or end of an order that kept a guardian out).
    """

    change: Change
    actor: Person
    own: bool = False
    guardian_of_child: bool = False
    gives_rights: bool = False


@dataclass(frozen=True)
class WriteVerdict:
    allowed: bool
    # Allowed, but takes effect only when an independent second person approves (may_approve).
    needs_approval: bool = False
    reason: str = ""


def may_write(write: Write) -> WriteVerdict:
    """Who may make each change, and whether it waits for a second person (docs/POLICY.md)."""
    change, actor = write.change, write.actor
    if change in _ADMIN_ONLY:
        if not actor.is_admin:
            return WriteVerdict(False, reason="not_admin")
        return WriteVerdict(True, change in _ALWAYS_SECOND_PERSON or write.gives_rights)
    if change is Change.DEVICE_REVOKE:
        return _either(write.own or actor.is_admin, "not_own_device")
    if change is Change.GUARDIANSHIP_END:
        return _either(actor.is_admin or actor.is_lead_of_child, "no_standing")
    if change is Change.CONSENT_CREATE and write.own and write.guardian_of_child:
        # A parent's own consent: theirs to give, at once.
        return WriteVerdict(True)
    if change in _LEAD_OF_CHILD:
        if not actor.is_lead_of_child:
            return WriteVerdict(False, reason="no_standing")
        # Staff recording a consent hold a paper someone else signed: a second person checks.
        return WriteVerdict(True, change is Change.CONSENT_CREATE or write.gives_rights)
    if change in (Change.SHARE_CREATE, Change.SHARE_REVOKE):
        # At once: the share's basis (a consent or a disclosing order) already waited for a
        # second person, and the release rules still judge the basis on every request.
        return _either(actor.is_lead_of_child, "no_standing")
    if change is Change.CONSENT_WITHDRAW:
        return _either(write.guardian_of_child or actor.is_lead_of_child, "no_standing")
    if change is Change.DISCLOSURES_READ:
        return _either(write.guardian_of_child or actor.is_lead_of_child, "no_standing")
    if change is Change.CHILD_DATES:
        return _either(actor.is_admin or actor.is_lead_of_child, "no_standing")
    if change in _SHREDDING:
        # Never an admin alone: admins cannot read, and must not destroy alone either; the
        # second person (shred.approve) must be another lead of the child (may_approve_shred).
        return _either(actor.is_lead_of_child, "no_standing")
    if change is Change.RECORD_DELETE:
        # And the release rules must let them read the record now (the caller asks those).
        return _either(actor.holds_lead_role, "not_manager_or_dsl")
    raise AssertionError(f"no rule for {change}")


def _either(allowed: bool, reason: str) -> WriteVerdict:
    return WriteVerdict(True) if allowed else WriteVerdict(False, reason=reason)


def may_record_for_child(person: Person) -> bool:
    """Consents and court orders about a child are recorded (and ended) by its manager or DSL:
    someone currently assigned to that child in that role."""
    return may_write(Write(Change.COURT_ORDER_CREATE, person)).allowed


def may_approve(proposal: Proposal, approver: Person) -> Verdict:
    """Whether ``approver`` may approve ``proposal``; the first failing rule is the reason."""
    if approver.kind != "staff":
        return Verdict.deny("not_staff")
    if approver.principal_id == proposal.proposer.principal_id:
        return Verdict.deny("own_proposal")
    if approver.principal_id == proposal.beneficiary_id:
        return Verdict.deny("beneficiary")
    if approver.circle & proposal.proposer.circle:
        return Verdict.deny("same_circle_as_proposer")
    if approver.circle & proposal.beneficiary_circle:
        return Verdict.deny("same_circle_as_beneficiary")
    if not _has_standing(proposal, approver):
        return Verdict.deny("no_standing")
    return Verdict.allow()


def may_approve_shred(requester: Person, approver: Person) -> Verdict:
    """Whether ``approver`` (already a lead of every child concerned) may approve a shred that
    ``requester`` asked for: a second person, not the requester or anyone who might act as
    them."""
    if approver.principal_id == requester.principal_id:
        return Verdict.deny("own_request")
    if approver.circle & requester.circle:
        return Verdict.deny("same_circle_as_requester")
    return Verdict.allow()


def _has_standing(proposal: Proposal, approver: Person) -> bool:
    if approver.is_admin:
        return True
    if proposal.action in CHILD_ACTIONS:
        return approver.is_lead_of_child
    if proposal.action is ProposalAction.ADMIN_CREATE:
        # A deployment with a single admin: its managers and DSLs approve the second one.
        return proposal.other_admins == 0 and approver.holds_lead_role
    if proposal.action is ProposalAction.DEVICE_ENROL:
        return approver.holds_lead_role
    return False
