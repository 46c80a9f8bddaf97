"""The facts loader (keyservice/catalog/facts.py) on a real schema (SQLite, no server).

A consent carries its giver's own right, so for an outside recipient the loader must bring
the giver's live guardianships and the court orders restricting the giver; without them the
consent rule finds the giver "not a guardian" and can never allow anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert

from keyservice.catalog.facts import load_relationships
from keyservice.db import make_engine, upgrade_to_head
from keyservice.db.tables import children, consents, court_orders, guardianships, principals
from keyservice.policy import (
    Action,
    Basis,
    Facts,
    PrincipalFacts,
    PrincipalKind,
    RecordFacts,
    Share,
    decide,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CHILD, OTHER_CHILD = "c1" * 16, "c2" * 16
PARENT, FORMER_PARENT, OTHER_PARENT = "a1" * 16, "a2" * 16, "a3" * 16
RECIPIENT, OTHER_RECIPIENT = "e1" * 16, "e2" * 16


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Connection]:
    engine = make_engine(f"sqlite:///{tmp_path / 'facts.db'}")
    upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(principals),
            [
                {
                    "principal_id": p,
                    "kind": kind,
                    "display_name": "x",
                    "roles": "",
                    "created_at": NOW,
                }
                for p, kind in [
                    (PARENT, "guardian"),
                    (FORMER_PARENT, "guardian"),
                    (OTHER_PARENT, "guardian"),
                    (RECIPIENT, "external"),
                    (OTHER_RECIPIENT, "external"),
                ]
            ],
        )
        connection.execute(
            insert(children),
            [{"child_id": c, "display_name": "x", "created_at": NOW} for c in (CHILD, OTHER_CHILD)],
        )
        connection.execute(
            insert(guardianships),
            [
                _guardianship("b1", PARENT, CHILD),
                _guardianship("b2", FORMER_PARENT, CHILD, ended_at=NOW - timedelta(days=1)),
                _guardianship("b3", OTHER_PARENT, CHILD),
                _guardianship("b4", PARENT, OTHER_CHILD),
            ],
        )
        connection.execute(
            insert(consents),
            [
                _consent("d1", PARENT, RECIPIENT),
                _consent("d2", FORMER_PARENT, RECIPIENT),
                _consent("d3", OTHER_PARENT, OTHER_RECIPIENT),
            ],
        )
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _guardianship(
    gid: str, guardian: str, child: str, *, ended_at: datetime | None = None
) -> dict[str, object]:
    return {
        "guardianship_id": gid * 16,
        "guardian_id": guardian,
        "child_id": child,
        "parental_responsibility": True,
        "created_at": NOW - timedelta(days=30),
        "ended_at": ended_at,
    }


def _consent(cid: str, giver: str, recipient: str) -> dict[str, object]:
    return {
        "consent_id": cid * 16,
        "child_id": CHILD,
        "given_by": giver,
        "recipient_id": recipient,
        "categories": "medical observation",
        "purpose": "transition",
        "valid_from": NOW - timedelta(days=1),
        "valid_to": NOW + timedelta(days=364),
    }


def _decide_on_share(db: Connection, consent_id: str, category: str = "observation") -> str:
    relationships = load_relationships(
        db, principal_id=RECIPIENT, kind="external", child_ids=[CHILD]
    )
    record = RecordFacts(
        record_id="7e" * 16, category=category, child_ids=(CHILD,), withheld_from_guardians=False
    )
    share = Share(
        share_id="5a" * 16,
        recipient_id=RECIPIENT,
        basis=Basis.CONSENT,
        basis_id=consent_id,
        record_ids=frozenset({record.record_id}),
        valid_from=NOW - timedelta(hours=1),
        valid_to=NOW + timedelta(days=1),
        revoked_at=None,
    )
    decision = decide(
        Facts(
            principal=PrincipalFacts(RECIPIENT, PrincipalKind.EXTERNAL, frozenset(), True, True),
            action=Action.READ,
            record=record,
            now=NOW,
            assignments=relationships.assignments,
            guardianships=relationships.guardianships,
            consents=relationships.consents,
            court_orders=relationships.court_orders,
            shares=(share,),
        )
    )
    return decision.reason


def test_an_outside_recipient_gets_the_live_guardianships_of_their_consents_givers(
    db: Connection,
) -> None:
    loaded = load_relationships(db, principal_id=RECIPIENT, kind="external", child_ids=[CHILD])
    assert {g.guardianship_id for g in loaded.guardianships} == {"b1" * 16}
    assert {c.consent_id for c in loaded.consents} == {"d1" * 16, "d2" * 16, "d3" * 16}


def test_a_share_on_a_parents_consent_is_allowed(db: Connection) -> None:
    assert _decide_on_share(db, "d1" * 16).startswith("Allowed")


def test_a_consent_whose_giver_is_no_longer_a_guardian_is_denied(db: Connection) -> None:
    assert "is not a guardian" in _decide_on_share(db, "d2" * 16)


def test_a_court_order_restricting_the_giver_is_loaded_and_denies(db: Connection) -> None:
    db.execute(
        insert(court_orders).values(
            court_order_id="0f" * 16,
            child_id=CHILD,
            effect="restrict_guardian",
            subject_id=PARENT,
            categories="medical",
            reference="FAM-9",
            valid_from=NOW - timedelta(days=1),
            valid_to=NOW + timedelta(days=100),
        )
    )
    assert "court order" in _decide_on_share(db, "d1" * 16, category="medical")
    assert _decide_on_share(db, "d1" * 16, category="observation").startswith("Allowed")


def test_a_guardian_still_gets_only_their_own_guardianships(db: Connection) -> None:
    loaded = load_relationships(db, principal_id=PARENT, kind="guardian", child_ids=[CHILD])
    assert {g.guardianship_id for g in loaded.guardianships} == {"b1" * 16}
    assert loaded.consents == ()
