"""The release policy: a pure function from facts to a decision with its basis and reason."""

from keyservice.policy.decide import decide
from keyservice.policy.facts import (
    Action,
    Assignment,
    Basis,
    Consent,
    CourtOrder,
    CourtOrderEffect,
    Decision,
    Facts,
    Guardianship,
    PrincipalFacts,
    PrincipalKind,
    RecordFacts,
    Share,
)

__all__ = [
    "Action",
    "Assignment",
    "Basis",
    "Consent",
    "CourtOrder",
    "CourtOrderEffect",
    "Decision",
    "Facts",
    "Guardianship",
    "PrincipalFacts",
    "PrincipalKind",
    "RecordFacts",
    "Share",
    "decide",
]
