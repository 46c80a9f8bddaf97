"""Retention rules: how long each category of record is kept, and when that ends for a child
(docs/decisions/0019-retention-and-shredding.md). Pure: a rule and a child's dates in, a date
out.

The defaults come from the regulations the deployment follows:

- Massachusetts 606 CMR 7.04: a child's record is kept five years after the child leaves the
  program (``left+5y``), for every category unless another rule says otherwise;
- UK child-protection files: kept until the child is 25 (``age+25y``), for safeguarding
  records.

A deployment overrides them with ``CAREVAULT_RETENTION``: comma-separated
``CATEGORY=BASIS+Ny`` items, ``*`` for every category not named, BASIS ``left`` (the
child's leaving date) or ``age`` (the child's date of birth). A rule is never met while its
date is unknown: a child without a leaving date is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from vault.format.attributes import Category

DEFAULT_RETENTION = "*=left+5y,safeguarding=age+25y"
SETTING = "CAREVAULT_RETENTION"
MAX_YEARS = 150


@dataclass(frozen=True)
class RetentionRule:
    """``basis`` is ``left`` or ``age``; kept ``years`` after that date."""

    category: str
    basis: str
    years: int

    @property
    def text(self) -> str:
        return f"{self.category}={self.basis}+{self.years}y"

    def due_on(self, *, date_of_birth: date | None, left_on: date | None) -> date | None:
        """The first day the record may go, or None while the date it rests on is unknown."""
        start = left_on if self.basis == "left" else date_of_birth
        if start is None:
            return None
        return _add_years(start, self.years)


def _add_years(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a year that has none
        return start.replace(year=start.year + years, day=28)


def parse_rules(text: str) -> dict[str, RetentionRule]:
    """The rules of ``text`` by category (``*`` included); ``ValueError`` naming the setting
    and the bad item otherwise."""
    categories = {c.value for c in Category} | {"*"}
    rules: dict[str, RetentionRule] = {}
    for item in (part.strip() for part in text.split(",")):
        category, _, rest = item.partition("=")
        basis, _, span = rest.partition("+")
        if (
            category not in categories
            or basis not in ("left", "age")
            or not span.endswith("y")
            or not span[:-1].isdigit()
            or not 0 <= int(span[:-1]) <= MAX_YEARS
        ):
            raise ValueError(
                f"{SETTING}: {item!r} is not CATEGORY=left+Ny or CATEGORY=age+Ny "
                f"(CATEGORY one of {', '.join(sorted(categories))}); the default is "
                f"{DEFAULT_RETENTION}"
            )
        if category in rules:
            raise ValueError(f"{SETTING}: {category!r} has two rules")
        rules[category] = RetentionRule(category, basis, int(span[:-1]))
    if "*" not in rules:
        raise ValueError(f"{SETTING}: a rule for '*' (every other category) is needed")
    return rules


def rule_for(rules: dict[str, RetentionRule], category: str) -> RetentionRule:
    return rules.get(category, rules["*"])
