"""A model world as the service's policy facts, and one comparison (decision 0028).

Only the public entry point (`keyservice.policy.decide`) and its facts types are used. Two
things the pure policy does not judge are left out of these worlds and checked through the
real API instead (tests/model/test_api_worlds.py): download caps (counted by the catalog) and
room memberships (read as assignments by the catalog's facts loader). Here a room membership
is handed to the policy as the assignment the document says it is, for the overlap of the two
windows.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyservice import policy
from tests.model import model
from tests.model.worlds import Query, describe, world

# The pure policy learns of shredded children from decision 0026's `Facts.shredded`; before that
# merge there is no way to tell it, and the worlds have none.
SHRED_AWARE = "shredded" in policy.Facts.__dataclass_fields__

_KINDS = {
    "staff": policy.PrincipalKind.STAFF,
    "guardian": policy.PrincipalKind.GUARDIAN,
    "outside": policy.PrincipalKind.EXTERNAL,
}


def facts(w: model.World, q: Query) -> policy.Facts:
    person = w.people[q.principal_id]
    record = w.records[q.record_id]
    assignments = [
        a
        for sid in w.people
        if w.people[sid].kind == "staff"
        for cid in w.children
        for a in model.staff_assignments(w, sid, cid)
    ]
    extra = {"shredded": frozenset(w.shredded)} if SHRED_AWARE else {}
    return policy.Facts(
        principal=policy.PrincipalFacts(
            principal_id=person.principal_id,
            kind=_KINDS[person.kind],
            roles=frozenset(person.roles),
            active=person.active,
            device_active=not person.device_revoked,
        ),
        action=policy.Action.READ if q.action == "read" else policy.Action.CREATE,
        record=policy.RecordFacts(
            record_id=record.record_id,
            category=record.category,
            child_ids=record.child_ids,
            withheld_from_guardians=record.withheld_from_guardians,
        ),
        now=q.now,
        assignments=tuple(
            policy.Assignment(
                assignment_id=a.assignment_id,
                staff_id=a.staff_id,
                child_id=a.child_id,
                role=a.role,
                valid_from=a.window.start,
                valid_to=a.window.end,
            )
            for a in assignments
        ),
        guardianships=tuple(
            policy.Guardianship(
                guardianship_id=g.guardianship_id,
                guardian_id=g.guardian_id,
                child_id=g.child_id,
                parental_responsibility=g.parental_responsibility,
            )
            for g in w.guardianships
        ),
        consents=tuple(
            policy.Consent(
                consent_id=c.consent_id,
                child_id=c.child_id,
                given_by=c.guardian_id,
                recipient_id=c.recipient_id,
                categories=frozenset(c.categories),
                purpose="model",
                valid_from=c.window.start,
                valid_to=_end(c.window),
                withdrawn_at=c.withdrawn_at,
            )
            for c in w.consents
        ),
        court_orders=tuple(
            policy.CourtOrder(
                court_order_id=o.order_id,
                child_id=o.child_id,
                effect=(
                    policy.CourtOrderEffect.DISCLOSE
                    if o.kind == "disclose"
                    else policy.CourtOrderEffect.RESTRICT_GUARDIAN
                ),
                subject_id=o.subject_id,
                categories=frozenset(o.categories),
                reference="model",
                valid_from=o.window.start,
                valid_to=_end(o.window),
            )
            for o in w.orders
        ),
        shares=tuple(
            policy.Share(
                share_id=s.share_id,
                recipient_id=s.recipient_id,
                basis=policy.Basis.CONSENT
                if s.basis_kind == "consent"
                else policy.Basis.COURT_ORDER,
                basis_id=s.basis_id,
                record_ids=frozenset(s.record_ids),
                valid_from=s.window.start,
                valid_to=_end(s.window),
                revoked_at=s.revoked_at,
            )
            for s in w.shares
        ),
        **extra,
    )


def _end(window: model.Window) -> model.datetime:
    if window.end is None:
        raise ValueError("consents, orders and shares always end")
    return window.end


@dataclass(frozen=True)
class Mismatch:
    seed: int
    expected: model.Answer
    got: policy.Decision
    description: str

    def __str__(self) -> str:
        return (
            f"world seed {self.seed}: the document says allowed={self.expected.allowed} "
            f"basis={self.expected.basis} ({self.expected.why}); the policy says "
            f"allowed={self.got.allowed} basis={self.got.basis.value} ({self.got.reason})\n"
            f"{self.description}"
        )


def compare(seed: int) -> Mismatch | None:
    """Build world `seed`, ask both implementations, return the difference if any."""
    w, q = world(seed, shredding=SHRED_AWARE)
    expected = model.decide(
        w, principal_id=q.principal_id, action=q.action, record_id=q.record_id, now=q.now
    )
    got = policy.decide(facts(w, q))
    allowed = got.allowed
    if q.action == "add" and set(w.records[q.record_id].child_ids) & w.shredded:
        # The service adds a record only if the policy allows it *and* every child still has a
        # key (keyservice/catalog/access.py `may_create`); a shredded child's keys are
        # destroyed. The document states the refusal; the pure policy leaves it to the keys.
        allowed = False
    got_basis = got.basis.value if allowed else "none"
    if allowed == expected.allowed and got_basis in expected.acceptable:
        return None
    return Mismatch(seed, expected, got, describe(w, q))


def run(first_seed: int, count: int) -> tuple[int, list[Mismatch], dict[str, int]]:
    """Compare `count` worlds from `first_seed`: the mismatches, and the outcomes by basis."""
    mismatches: list[Mismatch] = []
    outcomes: dict[str, int] = {}
    for seed in range(first_seed, first_seed + count):
        found = compare(seed)
        if found is not None:
            mismatches.append(found)
            continue
        w, q = world(seed, shredding=SHRED_AWARE)
        answer = model.decide(
            w, principal_id=q.principal_id, action=q.action, record_id=q.record_id, now=q.now
        )
        key = answer.basis if answer.allowed and answer.basis else "denied"
        outcomes[key] = outcomes.get(key, 0) + 1
    return count, mismatches, outcomes
