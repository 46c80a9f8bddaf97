"""The release policy as a decision table a nursery manager can read (docs/POLICY.md).

Each row: who asks, to do what with which record, when; the expected answer and basis; and a
phrase the reason must contain, so that a row passes only when it is decided for the right
reason. The cast is in tests/policy/cast.py. Every relationship of the nursery is passed to
every decision, so each row also checks that other people's relationships are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from keyservice.policy import Action, Basis, Facts, PrincipalFacts, RecordFacts, decide
from tests.policy import cast as c

ALLOW, DENY = True, False
READ, CREATE = Action.READ, Action.CREATE


@dataclass(frozen=True)
class Row:
    sentence: str
    principal: PrincipalFacts
    action: Action
    record: RecordFacts
    allowed: bool
    basis: Basis
    because: str
    at: datetime = c.NOW
    shredded: frozenset[str] = frozenset()


TABLE = [
    # Staff and assignments
    Row("Amira, educator in Room Robins assigned to Leo, reads Leo's observation",
        c.AMIRA, READ, c.OBSERVATION, ALLOW, Basis.ASSIGNMENT, "assignment as-amira-leo"),
    Row("Ben, educator in Room Wrens not assigned to Leo, reads Leo's observation",
        c.BEN, READ, c.OBSERVATION, DENY, Basis.NONE, "staff ben is not assigned to child leo"),
    Row("Chloe, whose assignment to Leo starts next week, reads Leo's observation",
        c.CHLOE, READ, c.OBSERVATION, DENY, Basis.NONE, "has not started yet"),
    Row("Dev, whose assignment to Leo ended last month, reads Leo's observation",
        c.DEV, READ, c.OBSERVATION, DENY, Basis.NONE, "has ended"),
    Row("Amira, educator assigned to Leo, reads Leo's safeguarding note",
        c.AMIRA, READ, c.SAFEGUARDING, DENY, Basis.NONE, "not assigned to child leo as DSL"),
    Row("Priya, DSL assigned to Leo, reads Leo's safeguarding note",
        c.PRIYA, READ, c.SAFEGUARDING, ALLOW, Basis.ASSIGNMENT, "assignment as-priya-leo"),
    Row("Mo, manager assigned to Leo, reads Leo's safeguarding note",
        c.MO, READ, c.SAFEGUARDING, ALLOW, Basis.ASSIGNMENT, "assignment as-mo-leo"),
    Row("Omar, who stepped down as DSL but whose old assignment says DSL, reads Leo's "
        "safeguarding note",
        c.FORMER_DSL, READ, c.SAFEGUARDING, DENY, Basis.NONE, "as DSL or manager"),
    Row("Priya, DSL assigned to Leo, reads a letter withheld from guardians",
        c.PRIYA, READ, c.WITHHELD, ALLOW, Basis.ASSIGNMENT, "assignment as-priya-leo"),
    Row("Alan, administrator not assigned to Leo, reads Leo's observation",
        c.ALAN, READ, c.OBSERVATION, DENY, Basis.NONE, "staff alan is not assigned"),
    Row("Ada, administrator also assigned to Leo as educator, reads Leo's observation",
        c.ADA, READ, c.OBSERVATION, ALLOW, Basis.ASSIGNMENT, "assignment as-ada-leo"),
    Row("Amira, whose phone (device) was revoked, reads Leo's observation",
        c.AMIRA_LOST_PHONE, READ, c.OBSERVATION, DENY, Basis.NONE, "device"),
    Row("Amira, who has left and whose account is deactivated, reads Leo's observation",
        c.AMIRA_LEFT, READ, c.OBSERVATION, DENY, Basis.NONE, "is not active"),
    Row("Amira reads a record of an unknown category about Leo",
        c.AMIRA, READ, c.UNKNOWN, DENY, Basis.NONE, "unknown category"),
    Row("Amira reads a record that belongs to no child",
        c.AMIRA, READ, c.NO_CHILD, DENY, Basis.NONE, "belongs to no child"),
    # Group records
    Row("Amira, assigned to Leo but not to Maya, reads a group photo of Leo and Maya",
        c.AMIRA, READ, c.GROUP_PHOTO, DENY, Basis.NONE, "child maya is not covered"),
    Row("Sara, key person of both Leo and Maya, reads a group photo of Leo and Maya",
        c.SARA, READ, c.GROUP_PHOTO, ALLOW, Basis.ASSIGNMENT, "child maya by assignment"),
    Row("Mr Jones, Leo's father, reads a group photo of Leo and Maya",
        c.MR_JONES, READ, c.GROUP_PHOTO, DENY, Basis.NONE, "child maya is not covered"),
    # Group records after one of their children was shredded whole (decision 0019)
    Row("Amira, assigned to Leo but not to Maya, reads the group photo after Maya's records "
        "were shredded",
        c.AMIRA, READ, c.GROUP_PHOTO, ALLOW, Basis.ASSIGNMENT, "Not counted, shredded: child maya",
        shredded=frozenset({"maya"})),
    Row("Mr Jones, Leo's father, reads the group photo after Maya's records were shredded",
        c.MR_JONES, READ, c.GROUP_PHOTO, ALLOW, Basis.GUARDIANSHIP, "guardianship g-jones-leo",
        shredded=frozenset({"maya"})),
    Row("Mrs Okafor, Maya's mother, reads the group photo after Maya's records were shredded",
        c.MRS_OKAFOR, READ, c.GROUP_PHOTO, DENY, Basis.NONE, "not a guardian of child leo",
        shredded=frozenset({"maya"})),
    Row("Sara, key person of both, reads the group photo after both children's records were "
        "shredded",
        c.SARA, READ, c.GROUP_PHOTO, DENY, Basis.NONE, "every child of record photo-2 has been "
        "shredded", shredded=frozenset({"leo", "maya"})),
    Row("Amira adds a new version of the group photo after Maya's records were shredded (she "
        "is not assigned to Maya)",
        c.AMIRA, CREATE, c.GROUP_PHOTO, DENY, Basis.NONE, "child maya is not covered",
        shredded=frozenset({"maya"})),
    # Guardians
    Row("Mr Jones, Leo's father with parental responsibility, reads Leo's observation",
        c.MR_JONES, READ, c.OBSERVATION, ALLOW, Basis.GUARDIANSHIP, "guardianship g-jones-leo"),
    Row("Ms Patel, Leo's mother, restricted from observations by a court order, reads Leo's "
        "observation",
        c.MS_PATEL, READ, c.OBSERVATION, DENY, Basis.NONE, "court order co-restrict-patel"),
    Row("Ms Patel reads Leo's medical letter, a category the order does not restrict",
        c.MS_PATEL, READ, c.MEDICAL, ALLOW, Basis.GUARDIANSHIP, "guardianship g-patel-leo"),
    Row("Ms Patel reads Leo's observation in mid-2027, after the court order has expired",
        c.MS_PATEL, READ, c.OBSERVATION, ALLOW, Basis.GUARDIANSHIP, "guardianship g-patel-leo",
        at=c.NOW + 200 * c.DAY),
    Row("Grandma Rose, without parental responsibility, reads Leo's observation",
        c.GRANDMA_ROSE, READ, c.OBSERVATION, DENY, Basis.NONE, "parental responsibility"),
    Row("Mrs Okafor, Maya's mother, reads Leo's observation",
        c.MRS_OKAFOR, READ, c.OBSERVATION, DENY, Basis.NONE, "not a guardian of child leo"),
    Row("Mr Jones reads Leo's safeguarding note",
        c.MR_JONES, READ, c.SAFEGUARDING, DENY, Basis.NONE, "never released to guardians"),
    Row("Mr Jones reads a letter about Leo withheld from guardians (third-party information)",
        c.MR_JONES, READ, c.WITHHELD, DENY, Basis.NONE, "withheld from guardians"),
    # Outside recipients: consent
    Row("Hana, health visitor with Ms Patel's consent but no share, reads Leo's medical letter",
        c.HANA, READ, c.MEDICAL, DENY, Basis.NONE, "a consent alone releases nothing"),
    Row("Social worker Kay at county social services, with Mr Jones's consent and a share, "
        "reads Leo's observation",
        c.KAY, READ, c.OBSERVATION, ALLOW, Basis.CONSENT, "share sh-kay on consent cn-kay"),
    Row("Social worker Kay reads Leo's photo, a category the consent does not cover",
        c.KAY, READ, c.PHOTO, DENY, Basis.NONE, "does not cover photo records"),
    Row("Social worker Kay reads Leo's safeguarding note under a parent's consent",
        c.KAY, READ, c.SAFEGUARDING, DENY, Basis.NONE, "does not cover safeguarding"),
    Row("Social worker Kay reads Leo's observation in January 2028, after the consent "
        "expired (the share is still open)",
        c.KAY, READ, c.OBSERVATION, DENY, Basis.NONE, "not valid now",
        at=c.NOW + 420 * c.DAY),
    Row("Dr Lee, school nurse, reads Leo's medical letter after Mr Jones withdrew consent",
        c.DR_LEE, READ, c.MEDICAL, DENY, Basis.NONE, "has been withdrawn"),
    Row("Sam reads Leo's observation on a share resting on Grandma Rose's consent (no "
        "parental responsibility)",
        c.SAM, READ, c.OBSERVATION, DENY, Basis.NONE, "parental responsibility"),
    Row("Social worker Kay, with consents from both families, reads a group photo of Leo and "
        "Maya that only Maya's consent covers",
        c.KAY, READ, c.GROUP_PHOTO, DENY, Basis.NONE, "child leo is not covered"),
    # Outside recipients: court order
    Row("Gwen, children's guardian named in a disclosure order, reads Leo's safeguarding note",
        c.GWEN, READ, c.SAFEGUARDING, ALLOW, Basis.COURT_ORDER,
        "share sh-gwen on court order co-disclose-gwen"),
    Row("Gwen reads Leo's photo, a category the order does not cover",
        c.GWEN, READ, c.PHOTO, DENY, Basis.NONE, "does not cover photo records"),
    Row("Gwen reads Leo's observation after the disclosure order and its share expired",
        c.GWEN, READ, c.OBSERVATION, DENY, Basis.NONE, "not valid now",
        at=c.NOW + 100 * c.DAY),
    Row("Gwen reads a letter about Leo the share does not list",
        c.GWEN, READ, c.WITHHELD, DENY, Basis.NONE, "has no share of record letter-1"),
    # Adding records
    Row("Amira, assigned to Leo, adds an observation of Leo",
        c.AMIRA, CREATE, c.OBSERVATION, ALLOW, Basis.ASSIGNMENT, "assignment as-amira-leo"),
    Row("Ben, not assigned to Leo, adds an observation of Leo",
        c.BEN, CREATE, c.OBSERVATION, DENY, Basis.NONE, "not assigned to child leo"),
    Row("Amira adds a safeguarding note about Leo",
        c.AMIRA, CREATE, c.SAFEGUARDING, DENY, Basis.NONE, "as DSL or manager"),
    Row("Priya, DSL, adds a safeguarding note about Leo",
        c.PRIYA, CREATE, c.SAFEGUARDING, ALLOW, Basis.ASSIGNMENT, "assignment as-priya-leo"),
    Row("Amira adds a group photo of Leo and Maya (she is not assigned to Maya)",
        c.AMIRA, CREATE, c.GROUP_PHOTO, DENY, Basis.NONE, "child maya is not covered"),
    Row("Alan, administrator, adds an observation of Leo",
        c.ALAN, CREATE, c.OBSERVATION, DENY, Basis.NONE, "not assigned to child leo"),
    Row("Mr Jones, Leo's father, adds a record about Leo",
        c.MR_JONES, CREATE, c.OBSERVATION, DENY, Basis.NONE, "guardians cannot add records"),
    Row("Social worker Kay adds a record about Leo",
        c.KAY, CREATE, c.OBSERVATION, DENY, Basis.NONE, "outside recipients cannot add"),
]  # fmt: skip


def _facts(row: Row) -> Facts:
    return Facts(
        principal=row.principal,
        action=row.action,
        record=row.record,
        now=row.at,
        assignments=c.ASSIGNMENTS,
        guardianships=c.GUARDIANSHIPS,
        consents=c.CONSENTS,
        court_orders=c.COURT_ORDERS,
        shares=c.SHARES,
        shredded=row.shredded,
    )


@pytest.mark.parametrize("row", TABLE, ids=[row.sentence for row in TABLE])
def test_decision_table(row: Row) -> None:
    decision = decide(_facts(row))
    assert (decision.allowed, decision.basis) == (row.allowed, row.basis), decision.reason
    assert row.because in decision.reason
    assert decision.reason.startswith("Allowed" if row.allowed else "Denied")


def test_every_row_is_in_the_managers_document() -> None:
    document = (Path(__file__).parents[2] / "docs" / "POLICY.md").read_text()
    missing = [
        row.sentence for row in TABLE if f"| {row.sentence} | {_answer(row)} |" not in document
    ]
    assert not missing


def _answer(row: Row) -> str:
    return f"yes, by {row.basis.value.replace('_', ' ')}" if row.allowed else "no"


def markdown_table() -> str:
    """The table as it appears in docs/POLICY.md (run this module to print it)."""
    lines = ["| situation | released? | why (the reason recorded in the audit) |", "|---|---|---|"]
    for row in TABLE:
        lines.append(f"| {row.sentence} | {_answer(row)} | {decide(_facts(row)).reason} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
