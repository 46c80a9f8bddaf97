"""The four rules of release (docs/POLICY.md), each judging one child of the record.

Each rule returns a Cover: the basis that covers the child with the evidence it rests on, or
Basis.NONE with the reason it does not. Rules scan the relationship tuples once each; they
never sort them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from keyservice.policy.facts import Basis, CourtOrder, CourtOrderEffect, Facts, Share
from vault.format import Category

SAFEGUARDING = Category.SAFEGUARDING.value
ASSIGNMENT_ROLES = frozenset({"educator", "manager", "dsl"})
SAFEGUARDING_ROLES = frozenset({"manager", "dsl"})


@dataclass(frozen=True)
class Cover:
    """How one child is covered, or why not.

    ``text`` is the evidence when covered ("assignment a1") and the reason when not.
    """

    basis: Basis
    text: str

    @property
    def covered(self) -> bool:
        return self.basis is not Basis.NONE


def _not_covered(reason: str) -> Cover:
    return Cover(Basis.NONE, reason)


def _within(now: datetime, start: datetime, end: datetime | None) -> bool:
    return start <= now and (end is None or now < end)


def _in_force(now: datetime, ended_at: datetime | None) -> bool:
    """Not withdrawn or revoked yet (a future withdrawal takes effect at its time)."""
    return ended_at is None or now < ended_at


def by_assignment(facts: Facts, child_id: str) -> Cover:
    """Rule 1: staff currently assigned to the child; safeguarding only as DSL or manager."""
    principal, now = facts.principal, facts.now
    who = f"staff {principal.principal_id}"
    mine = [
        a
        for a in facts.assignments
        if a.staff_id == principal.principal_id and a.child_id == child_id
    ]
    if not mine:
        return _not_covered(f"{who} is not assigned to child {child_id}")
    current = [
        a for a in mine if a.role in ASSIGNMENT_ROLES and _within(now, a.valid_from, a.valid_to)
    ]
    if not current:
        if any(a.valid_from > now for a in mine):
            return _not_covered(f"{who}'s assignment to child {child_id} has not started yet")
        return _not_covered(f"{who}'s assignment to child {child_id} has ended")
    if facts.record.category == SAFEGUARDING:
        # The principal must still hold the role too: a DSL who stepped down loses access
        # even if an old assignment still says "dsl".
        current = [a for a in current if a.role in SAFEGUARDING_ROLES and a.role in principal.roles]
        if not current:
            return _not_covered(
                f"record {facts.record.record_id} is a safeguarding record and {who} is not "
                f"assigned to child {child_id} as DSL or manager"
            )
    return Cover(Basis.ASSIGNMENT, f"assignment {current[0].assignment_id}")


def _restricting_order(facts: Facts, *, guardian_id: str, child_id: str) -> CourtOrder | None:
    for order in facts.court_orders:
        if (
            order.effect == CourtOrderEffect.RESTRICT_GUARDIAN
            and order.subject_id == guardian_id
            and order.child_id == child_id
            and _within(facts.now, order.valid_from, order.valid_to)
            # A restriction listing no category restricts every category: an order must
            # never fail open because a list was left empty.
            and (not order.categories or facts.record.category in order.categories)
        ):
            return order
    return None


def by_guardianship(facts: Facts, child_id: str, *, guardian_id: str) -> Cover:
    """Rule 2: a guardian with parental responsibility, not restricted by a court order, and
    never for safeguarding records or records withheld from guardians."""
    record = facts.record
    who = f"guardian {guardian_id}"
    if record.category == SAFEGUARDING:
        return _not_covered(
            f"record {record.record_id} is a safeguarding record, never released to guardians"
        )
    if record.withheld_from_guardians:
        return _not_covered(f"record {record.record_id} is withheld from guardians")
    links = [
        g for g in facts.guardianships if g.guardian_id == guardian_id and g.child_id == child_id
    ]
    responsible = next((g for g in links if g.parental_responsibility), None)
    if responsible is None:
        if links:
            return _not_covered(f"{who} does not have parental responsibility for child {child_id}")
        return _not_covered(f"principal {guardian_id} is not a guardian of child {child_id}")
    order = _restricting_order(facts, guardian_id=guardian_id, child_id=child_id)
    if order is not None:
        return _not_covered(
            f"court order {order.court_order_id} restricts {who} from "
            f"{record.category} records of child {child_id}"
        )
    return Cover(Basis.GUARDIANSHIP, f"guardianship {responsible.guardianship_id}")


def _consent_cover(facts: Facts, share: Share, child_id: str) -> Cover | None:
    """How a share resting on a consent covers the child; None if it is not about the child."""
    consent = next((c for c in facts.consents if c.consent_id == share.basis_id), None)
    if consent is None or consent.child_id != child_id:
        return None
    what = f"consent {consent.consent_id}"
    if consent.recipient_id != facts.principal.principal_id:
        return _not_covered(f"{what} names another recipient")
    if facts.record.category not in consent.categories:
        return _not_covered(f"{what} does not cover {facts.record.category} records")
    if not _in_force(facts.now, consent.withdrawn_at):
        return _not_covered(f"{what} has been withdrawn")
    if not _within(facts.now, consent.valid_from, consent.valid_to):
        return _not_covered(f"{what} is not valid now (expired or not yet started)")
    # Consent carries the giver's own right, so it reaches only what the giver may read:
    # parental responsibility, no restricting order, no safeguarding or withheld records.
    giver = by_guardianship(facts, child_id, guardian_id=consent.given_by)
    if not giver.covered:
        return _not_covered(f"{what} cannot cover this record: {giver.text}")
    return Cover(Basis.CONSENT, f"share {share.share_id} on {what}")


def _court_order_cover(facts: Facts, share: Share, child_id: str) -> Cover | None:
    """How a share resting on a court order covers the child; None if it is not about the
    child."""
    order = next((o for o in facts.court_orders if o.court_order_id == share.basis_id), None)
    if order is None or order.child_id != child_id:
        return None
    what = f"court order {order.court_order_id}"
    if order.effect != CourtOrderEffect.DISCLOSE:
        return _not_covered(f"{what} does not order disclosure")
    if order.subject_id != facts.principal.principal_id:
        return _not_covered(f"{what} orders disclosure to another recipient")
    # An empty category list discloses nothing: default deny.
    if facts.record.category not in order.categories:
        return _not_covered(f"{what} does not cover {facts.record.category} records")
    if not _within(facts.now, order.valid_from, order.valid_to):
        return _not_covered(f"{what} is not valid now (expired or not yet started)")
    return Cover(Basis.COURT_ORDER, f"share {share.share_id} on {what}")


def by_share(facts: Facts, child_id: str) -> Cover:
    """Rules 3 and 4: an outside recipient named in a current share of this record that rests
    on a valid consent or a disclosing court order about the child."""
    principal, record, now = facts.principal, facts.record, facts.now
    who = f"outside recipient {principal.principal_id}"
    shares = [
        s
        for s in facts.shares
        if s.recipient_id == principal.principal_id and record.record_id in s.record_ids
    ]
    if not shares:
        consent = next(
            (
                c
                for c in facts.consents
                if c.recipient_id == principal.principal_id and c.child_id == child_id
            ),
            None,
        )
        if consent is not None:
            return _not_covered(
                f"{who} has consent {consent.consent_id} for child {child_id} but no share "
                f"of record {record.record_id}: a consent alone releases nothing"
            )
        return _not_covered(f"{who} has no share of record {record.record_id}")
    live = [
        s for s in shares if _in_force(now, s.revoked_at) and _within(now, s.valid_from, s.valid_to)
    ]
    if not live:
        share = shares[0]
        if not _in_force(now, share.revoked_at):
            return _not_covered(f"share {share.share_id} has been revoked")
        return _not_covered(f"share {share.share_id} is not valid now (expired or not yet started)")
    refusal: Cover | None = None
    for share in live:
        judge = _consent_cover if share.basis is Basis.CONSENT else _court_order_cover
        cover = judge(facts, share, child_id)
        if cover is not None and cover.covered:
            return cover
        refusal = refusal or cover
    return refusal or _not_covered(
        f"no current share of record {record.record_id} for {who} rests on a consent or "
        f"court order about child {child_id}"
    )
