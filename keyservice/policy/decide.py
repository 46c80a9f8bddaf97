"""The release decision: default deny, every child of the record covered, deny overrides allow."""

from __future__ import annotations

from collections.abc import Callable

from keyservice.policy.facts import Action, Basis, Decision, Facts, PrincipalKind
from keyservice.policy.rules import Cover, by_assignment, by_guardianship, by_share
from vault.format import Category

Rule = Callable[[Facts, str], Cover]

_KNOWN_CATEGORIES = frozenset(category.value for category in Category)

# When children of one record are covered on different bases, the decision records the first
# of them in this order: the weightier legal ground, which also outlives a withdrawn consent.
_BASIS_PRECEDENCE = (Basis.COURT_ORDER, Basis.CONSENT, Basis.GUARDIANSHIP, Basis.ASSIGNMENT)


def _as_guardian(facts: Facts, child_id: str) -> Cover:
    return by_guardianship(facts, child_id, guardian_id=facts.principal.principal_id)


_RULES: dict[tuple[Action, PrincipalKind], Rule] = {
    (Action.READ, PrincipalKind.STAFF): by_assignment,
    (Action.READ, PrincipalKind.GUARDIAN): _as_guardian,
    (Action.READ, PrincipalKind.EXTERNAL): by_share,
    (Action.CREATE, PrincipalKind.STAFF): by_assignment,
}

_VERBS = {Action.READ: "read", Action.CREATE: "add"}
_WHO = {
    PrincipalKind.STAFF: "staff",
    PrincipalKind.GUARDIAN: "guardians",
    PrincipalKind.EXTERNAL: "outside recipients",
}


def _deny(reason: str) -> Decision:
    return Decision(allowed=False, basis=Basis.NONE, reason=f"Denied: {reason}.")


def _refusal(facts: Facts) -> str | None:
    """Reasons to deny before any rule is looked at."""
    principal, record = facts.principal, facts.record
    if not principal.active:
        return f"principal {principal.principal_id} is not active"
    if not principal.device_active:
        return f"the requesting device of principal {principal.principal_id} is revoked"
    if record.category not in _KNOWN_CATEGORIES:
        return f"record {record.record_id} has an unknown category"
    if not record.child_ids:
        return f"record {record.record_id} belongs to no child"
    if (facts.action, principal.kind) not in _RULES:
        return f"{_WHO[principal.kind]} cannot {_VERBS[facts.action]} records"
    return None


def decide(facts: Facts) -> Decision:
    """Decide whether ``facts.principal`` may do ``facts.action`` on ``facts.record`` now.

    Allowed only if one rule covers every child of the record; the first child (in id order)
    that no rule covers is named in the denial. A child whose shred was carried out
    (``facts.shredded``) does not count when the record is read: the record stays for its
    other children (decision 0019) and is judged by them alone; one whose every child was
    shredded is denied.
    """
    refusal = _refusal(facts)
    if refusal is not None:
        return _deny(refusal)
    rule = _RULES[(facts.action, facts.principal.kind)]
    record = facts.record
    children = sorted(set(record.child_ids))
    gone = [c for c in children if c in facts.shredded] if facts.action is Action.READ else []
    if gone:
        children = [c for c in children if c not in facts.shredded]
        if not children:
            return _deny(f"every child of record {record.record_id} has been shredded")
    covers: list[tuple[str, Cover]] = []
    for child_id in children:
        cover = rule(facts, child_id)
        if not cover.covered:
            if len(children) == 1:
                return _deny(cover.text)
            return _deny(
                f"record {record.record_id} belongs to {len(children)} children and child "
                f"{child_id} is not covered: {cover.text}"
            )
        covers.append((child_id, cover))
    bases = {cover.basis for _, cover in covers}
    basis = next(b for b in _BASIS_PRECEDENCE if b in bases)
    evidence = "; ".join(f"child {child_id} by {cover.text}" for child_id, cover in covers)
    reason = f"Allowed to {_VERBS[facts.action]} record {record.record_id}: {evidence}."
    if len(bases) > 1:
        reason += f" Recorded basis: {basis}, the weightier of those used."
    if gone:
        reason += f" Not counted, shredded: child {', child '.join(gone)}."
    return Decision(allowed=True, basis=basis, reason=reason)
