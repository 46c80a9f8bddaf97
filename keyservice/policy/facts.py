"""The facts a release decision is made from: who asks, for what, about which record, when.

The caller passes every relationship of the principal and of the record's children; rows
about other principals, other children or other times may be included and are ignored.
Every time is timezone-aware and every validity window is half-open: valid_from <= now <
valid_to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Action(StrEnum):
    """What the principal wants to do with the record."""

    READ = "read"
    CREATE = "create"  # add a record, or a version of one, for these children


class PrincipalKind(StrEnum):
    STAFF = "staff"
    GUARDIAN = "guardian"
    EXTERNAL = "external"


class Basis(StrEnum):
    """The rule a decision rests on; NONE for every denial."""

    ASSIGNMENT = "assignment"
    GUARDIANSHIP = "guardianship"
    CONSENT = "consent"
    COURT_ORDER = "court_order"
    NONE = "none"


class CourtOrderEffect(StrEnum):
    DISCLOSE = "disclose"  # to the order's subject, an outside recipient
    RESTRICT_GUARDIAN = "restrict_guardian"  # keeps the order's subject, a guardian, out


_EFFECTS = frozenset(effect.value for effect in CourtOrderEffect)


def _require_aware(name: str, *moments: datetime | None) -> None:
    # Comparing naive and aware times raises mid-decision; refuse them when the facts are built.
    if any(m is not None and m.utcoffset() is None for m in moments):
        raise ValueError(f"{name}: times must be timezone-aware")


@dataclass(frozen=True)
class PrincipalFacts:
    principal_id: str
    kind: PrincipalKind
    roles: frozenset[str]
    active: bool
    device_active: bool


@dataclass(frozen=True)
class RecordFacts:
    """The record asked about. ``category`` is a plain string so that an unknown category can
    reach the policy, which denies it."""

    record_id: str
    category: str
    child_ids: tuple[str, ...]
    withheld_from_guardians: bool


@dataclass(frozen=True)
class Assignment:
    """A staff member assigned to a child; ``valid_to`` None means until ended."""

    assignment_id: str
    staff_id: str
    child_id: str
    role: str
    valid_from: datetime
    valid_to: datetime | None

    def __post_init__(self) -> None:
        _require_aware("assignment", self.valid_from, self.valid_to)


@dataclass(frozen=True)
class Guardianship:
    guardianship_id: str
    guardian_id: str
    child_id: str
    parental_responsibility: bool


@dataclass(frozen=True)
class Consent:
    """A guardian's written consent to disclose a child's records of some categories to one
    outside recipient for a purpose."""

    consent_id: str
    child_id: str
    given_by: str
    recipient_id: str
    categories: frozenset[str]
    purpose: str
    valid_from: datetime
    valid_to: datetime
    withdrawn_at: datetime | None

    def __post_init__(self) -> None:
        _require_aware("consent", self.valid_from, self.valid_to, self.withdrawn_at)


@dataclass(frozen=True)
class CourtOrder:
    """A recorded court order about one child and some categories of its records.

    ``subject_id`` is the outside recipient records are disclosed to (``disclose``) or the
    guardian kept out (``restrict_guardian``).
    """

    court_order_id: str
    child_id: str
    effect: str
    subject_id: str
    categories: frozenset[str]
    reference: str
    valid_from: datetime
    valid_to: datetime

    def __post_init__(self) -> None:
        _require_aware("court order", self.valid_from, self.valid_to)
        if self.effect not in _EFFECTS:
            raise ValueError(f"court order effect {self.effect!r} is not one of {sorted(_EFFECTS)}")


@dataclass(frozen=True)
class Share:
    """Named records made available to one outside recipient, resting on a consent or a
    court order (``basis_id``), for a time."""

    share_id: str
    recipient_id: str
    basis: Basis
    basis_id: str
    record_ids: frozenset[str]
    valid_from: datetime
    valid_to: datetime
    revoked_at: datetime | None

    def __post_init__(self) -> None:
        _require_aware("share", self.valid_from, self.valid_to, self.revoked_at)
        if self.basis not in (Basis.CONSENT, Basis.COURT_ORDER):
            raise ValueError("a share rests on a consent or a court order")


@dataclass(frozen=True)
class Facts:
    """Everything one decision needs. ``now`` comes from the caller: the policy has no clock.

    ``shredded``: children whose shred was carried out (decision 0019); a record's children
    among them no longer count when it is read (docs/POLICY.md).
    """

    principal: PrincipalFacts
    action: Action
    record: RecordFacts
    now: datetime
    assignments: tuple[Assignment, ...] = ()
    guardianships: tuple[Guardianship, ...] = ()
    consents: tuple[Consent, ...] = ()
    court_orders: tuple[CourtOrder, ...] = ()
    shares: tuple[Share, ...] = ()
    shredded: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _require_aware("now", self.now)


@dataclass(frozen=True)
class Decision:
    """Allowed or not, the rule it rests on, and one plain sentence with ids, never names."""

    allowed: bool
    basis: Basis
    reason: str
