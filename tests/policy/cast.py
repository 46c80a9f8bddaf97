"""A small nursery to state the policy against: people, children, records and relationships.

Ids are short readable strings so that a reason like "staff amira is not assigned to child
leo" reads well in the table; the policy treats them as opaque.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from keyservice.policy import (
    Assignment,
    Basis,
    Consent,
    CourtOrder,
    Guardianship,
    PrincipalFacts,
    PrincipalKind,
    RecordFacts,
    Share,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
YEAR = timedelta(days=365)


def _active(principal_id: str, kind: PrincipalKind, roles: tuple[str, ...] = ()) -> PrincipalFacts:
    """A principal who is active, on an active device."""
    return PrincipalFacts(
        principal_id=principal_id,
        kind=kind,
        roles=frozenset(roles),
        active=True,
        device_active=True,
    )


def staff(principal_id: str, *roles: str) -> PrincipalFacts:
    return _active(principal_id, PrincipalKind.STAFF, roles)


def guardian(principal_id: str) -> PrincipalFacts:
    return _active(principal_id, PrincipalKind.GUARDIAN)


def external(principal_id: str) -> PrincipalFacts:
    return _active(principal_id, PrincipalKind.EXTERNAL)


# People. Leo and Maya are in Room Robins.
AMIRA = staff("amira", "educator")  # educator in Room Robins, Leo's key person
BEN = staff("ben", "educator")  # educator in Room Wrens, not assigned to Leo
CHLOE = staff("chloe", "educator")  # joins Room Robins next week
DEV = staff("dev", "educator")  # moved out of Room Robins last month
SARA = staff("sara", "educator")  # educator in Room Robins, key person of Leo and Maya
PRIYA = staff("priya", "dsl")  # designated safeguarding lead
FORMER_DSL = staff("omar", "educator")  # stepped down as DSL; his old assignment still says dsl
MO = staff("mo", "manager")  # nursery manager
ALAN = staff("alan", "admin")  # administrator, not assigned to anyone
ADA = staff("ada", "admin")  # administrator who also covers Room Robins as an educator
AMIRA_LEFT = replace(AMIRA, active=False)  # has left; her account is deactivated
AMIRA_LOST_PHONE = replace(AMIRA, device_active=False)  # her phone was revoked
MR_JONES = guardian("mr-jones")  # Leo's father, parental responsibility
MS_PATEL = guardian("ms-patel")  # Leo's mother, parental responsibility, restricted by order
GRANDMA_ROSE = guardian("rose")  # Leo's grandmother, no parental responsibility
MRS_OKAFOR = guardian("mrs-okafor")  # Maya's mother, parental responsibility
KAY = external("kay")  # social worker at county social services
HANA = external("hana")  # health visitor
DR_LEE = external("dr-lee")  # school nurse at Hilltop Primary
GWEN = external("gwen")  # children's guardian appointed by the family court
SAM = external("sam")  # someone a share was made for, resting on Rose's "consent"

# Records.
OBSERVATION = RecordFacts("obs-1", "observation", ("leo",), False)
MEDICAL = RecordFacts("med-1", "medical", ("leo",), False)
PHOTO = RecordFacts("photo-1", "photo", ("leo",), False)
SAFEGUARDING = RecordFacts("sg-1", "safeguarding", ("leo",), False)
WITHHELD = RecordFacts("letter-1", "correspondence", ("leo",), True)
GROUP_PHOTO = RecordFacts("photo-2", "photo", ("leo", "maya"), False)
UNKNOWN = RecordFacts("odd-1", "horoscope", ("leo",), False)
NO_CHILD = RecordFacts("orphan-1", "observation", (), False)

ASSIGNMENTS = (
    Assignment("as-amira-leo", "amira", "leo", "educator", NOW - YEAR, None),
    Assignment("as-ben-noah", "ben", "noah", "educator", NOW - YEAR, None),
    Assignment("as-chloe-leo", "chloe", "leo", "educator", NOW + 7 * DAY, None),
    Assignment("as-dev-leo", "dev", "leo", "educator", NOW - YEAR, NOW - 30 * DAY),
    Assignment("as-sara-leo", "sara", "leo", "educator", NOW - YEAR, None),
    Assignment("as-sara-maya", "sara", "maya", "educator", NOW - YEAR, None),
    Assignment("as-priya-leo", "priya", "leo", "dsl", NOW - YEAR, None),
    Assignment("as-omar-leo", "omar", "leo", "dsl", NOW - YEAR, None),
    Assignment("as-mo-leo", "mo", "leo", "manager", NOW - YEAR, None),
    Assignment("as-ada-leo", "ada", "leo", "educator", NOW - 30 * DAY, None),
)

GUARDIANSHIPS = (
    Guardianship("g-jones-leo", "mr-jones", "leo", True),
    Guardianship("g-patel-leo", "ms-patel", "leo", True),
    Guardianship("g-rose-leo", "rose", "leo", False),
    Guardianship("g-okafor-maya", "mrs-okafor", "maya", True),
)

CONSENTS = (
    Consent(
        "cn-kay", "leo", "mr-jones", "kay", frozenset({"observation", "medical"}),
        "child in need assessment", NOW - 30 * DAY, NOW - 30 * DAY + YEAR, None,
    ),
    Consent(
        "cn-hana", "leo", "ms-patel", "hana", frozenset({"medical"}),
        "health review", NOW - 10 * DAY, NOW - 10 * DAY + YEAR, None,
    ),
    Consent(
        "cn-lee", "leo", "mr-jones", "dr-lee", frozenset({"medical"}),
        "school transition", NOW - 60 * DAY, NOW - 60 * DAY + YEAR, NOW - DAY,
    ),
    Consent(
        "cn-sam", "leo", "rose", "sam", frozenset({"observation"}),
        "family contact", NOW - 10 * DAY, NOW - 10 * DAY + YEAR, None,
    ),
    Consent(
        "cn-kay-maya", "maya", "mrs-okafor", "kay", frozenset({"photo"}),
        "child in need assessment", NOW - 30 * DAY, NOW - 30 * DAY + YEAR, None,
    ),
)  # fmt: skip

COURT_ORDERS = (
    CourtOrder(
        "co-restrict-patel", "leo", "restrict_guardian", "ms-patel", frozenset({"observation"}),
        "FC-2026-114", NOW - 60 * DAY, NOW + 180 * DAY,
    ),
    CourtOrder(
        "co-disclose-gwen", "leo", "disclose", "gwen",
        frozenset({"observation", "medical", "safeguarding"}),
        "FC-2026-201", NOW - 5 * DAY, NOW + 90 * DAY,
    ),
)  # fmt: skip

SHARES = (
    Share(
        "sh-kay", "kay", Basis.CONSENT, "cn-kay",
        frozenset({"obs-1", "med-1", "photo-1", "sg-1", "letter-1", "photo-2"}),
        NOW - 30 * DAY, NOW + 2 * YEAR, None,
    ),
    Share(
        "sh-kay-maya", "kay", Basis.CONSENT, "cn-kay-maya", frozenset({"photo-2"}),
        NOW - 30 * DAY, NOW + 2 * YEAR, None,
    ),
    Share(
        "sh-lee", "dr-lee", Basis.CONSENT, "cn-lee", frozenset({"med-1"}),
        NOW - 60 * DAY, NOW + YEAR, None,
    ),
    Share(
        "sh-sam", "sam", Basis.CONSENT, "cn-sam", frozenset({"obs-1"}),
        NOW - 10 * DAY, NOW + YEAR, None,
    ),
    Share(
        "sh-gwen", "gwen", Basis.COURT_ORDER, "co-disclose-gwen",
        frozenset({"obs-1", "med-1", "photo-1", "sg-1"}),
        NOW - 5 * DAY, NOW + 90 * DAY, None,
    ),
)  # fmt: skip
