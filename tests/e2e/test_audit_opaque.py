"""Audit entries hold opaque ids only (docs/AUDIT.md), checked on the stored rows.

A full flow runs on a fresh nursery: people, a child and a room with telling names, records
with telling file names and content, consents with a purpose and court orders with a
reference (proposed and approved, or recorded at once), reasons for ending them, refusals
whose requests carry names. Then every field of every stored audit entry
is read straight from the service's database (the SQLite file, or PostgreSQL) and searched for
each of those strings, as written and as JSON would escape them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.world import World
from vault.client import Client, Proposal
from vault.errors import AccessDenied, RecordUnavailable

pytestmark = pytest.mark.integration

TAG = "audit-5d1c"
MARKER = f"E2E-AUDIT-MARKER-{TAG}"
STAFF_NAME = f"Marta Quill {TAG}"
GUARDIAN_NAME = f"Zoë Lindqvist {TAG}"
RECIPIENT_NAME = f"Health Visitor Hale {TAG}"
ORGANISATION = f"Riverside Clinic {TAG}"
REFUSED_NAME = f"Mallory Sneak {TAG}"
CHILD_NAME = f"Pip Okafor {TAG}"
ROOM = f"Otters Room {TAG}"
DEVICE_NAME = f"Marta's tablet {TAG}"
FILE_NAME = f"pip-first-steps-{TAG}.txt"
AMENDED_FILE_NAME = f"pip-first-steps-amended-{TAG}.txt"
CONTENT_TYPE = f"text/x-{TAG}"
PURPOSE = f"to plan speech therapy sessions {TAG}"
REFERENCE = f"Family Court FC-2026-{TAG}"
REASON = f"the family moved to Leeds {TAG}"


def _enrol(
    world: World,
    name: str,
    *,
    kind: str,
    roles: tuple[str, ...] = (),
    organisation: str | None = None,
    device: str | None = None,
) -> Client:
    principal = world.admin.create_principal(
        kind=kind, display_name=name, roles=roles, organisation=organisation
    )
    world.ids[name] = principal
    issued = world.admin.enrolment_code(principal)
    assert not isinstance(issued, Proposal)
    client, _identity = Client.enrol(
        world.service.base_url, issued.code, device or f"{name} device"
    )
    world.people[name] = client
    return client


def _run_flow(world: World, tmp_path: Path) -> dict[str, str]:
    """Everything a nursery does in a day, with names in every place a name can go."""
    admin, dana, ben = world.admin, world.people["dana"], world.people["ben"]
    marta = _enrol(world, STAFF_NAME, kind="staff", roles=("educator",), device=DEVICE_NAME)
    zoe = _enrol(world, GUARDIAN_NAME, kind="guardian")
    _enrol(world, RECIPIENT_NAME, kind="external", organisation=ORGANISATION)
    pip = admin.create_child(display_name=CHILD_NAME, room=ROOM)
    world.assign(STAFF_NAME, pip)
    world.assign("dana", pip, role="dsl")
    world.add_guardian(GUARDIAN_NAME, pip)

    source = tmp_path / FILE_NAME
    source.write_text(f"{MARKER}: Pip took four steps to the book corner.\n" * 20)
    ref = marta.put(child_ids=[pip], category="observation", path=source, content_type=CONTENT_TYPE)
    marta.amend(
        ref.record_id, stream=io.BytesIO(f"{MARKER} amended".encode()), file_name=AMENDED_FILE_NAME
    )
    assert [r.file_name for r in marta.records(pip)] == [AMENDED_FILE_NAME]
    zoe.get(ref.record_id, version=1, dst=tmp_path / "zoe.txt")
    assert MARKER in (tmp_path / "zoe.txt").read_text()
    assert marta.get_range(ref.record_id, start=0, length=len(MARKER)) == MARKER.encode()
    with pytest.raises(RecordUnavailable):
        ben.get(ref.record_id, version=1, dst=tmp_path / "ben.txt")
    with pytest.raises(AccessDenied):
        marta.create_principal(kind="staff", display_name=REFUSED_NAME)

    def consent_of(recorder: Client, category: str) -> str | Proposal:
        return recorder.record_consent(
            child_id=pip,
            given_by=world.ids[GUARDIAN_NAME],
            recipient_id=world.ids[RECIPIENT_NAME],
            categories=[category],
            purpose=PURPOSE,
        )

    proposed = consent_of(dana, "observation")
    assert isinstance(proposed, Proposal)
    consent = world.approved(proposed)
    own = consent_of(zoe, "photo")
    assert isinstance(own, str), "a guardian's own consent is recorded at once"
    now = datetime.now(UTC)

    def order(effect: str, subject: str) -> str | Proposal:
        return dana.record_court_order(
            child_id=pip,
            effect=effect,
            subject_id=world.ids[subject],
            categories=["medical"],
            reference=REFERENCE,
            valid_from=now - timedelta(days=1),
            valid_to=now + timedelta(days=90),
        )

    disclosing = order("disclose", RECIPIENT_NAME)
    assert isinstance(disclosing, Proposal)
    world.approved(disclosing)
    restricting = order("restrict_guardian", GUARDIAN_NAME)
    assert isinstance(restricting, str), "an order restricting a guardian is recorded at once"
    dana.withdraw_consent(consent, reason=REASON)
    assert zoe.disclosures(pip)
    dana.delete(ref.record_id)
    return {"child": pip, "record": ref.record_id}


def _audit_rows(world: World) -> list[dict[str, object]]:
    engine = create_engine(world.service.env["CAREVAULT_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM audit_entries ORDER BY seq"))
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def _forms(needle: str) -> Iterator[str]:
    """The needle as written and as canonical (ASCII-only) JSON would store it."""
    yield needle
    yield json.dumps(needle)[1:-1]


def test_audit_entries_hold_no_names_or_content(world: World, tmp_path: Path) -> None:
    ids = _run_flow(world, tmp_path)
    rows = _audit_rows(world)
    actions = {str(row["action"]) for row in rows}
    # The scan is only worth something if the flow's entries are there to be scanned.
    for action in (
        "keys.release",
        "record.create",
        "proposal.create",
        "proposal.approve",
        "consent.create",
        "consent.withdraw",
        "court_order.create",
        "record.delete",
    ):
        assert action in actions, f"no {action} entry among {sorted(actions)}"
    stored = [" ".join(str(value) for value in row.values()) for row in rows]
    assert any(ids["child"] in entry for entry in stored), "details must carry opaque ids"
    needles = [
        MARKER,
        STAFF_NAME,
        GUARDIAN_NAME,
        RECIPIENT_NAME,
        ORGANISATION,
        REFUSED_NAME,
        CHILD_NAME,
        ROOM,
        DEVICE_NAME,
        FILE_NAME,
        AMENDED_FILE_NAME,
        CONTENT_TYPE,
        PURPOSE,
        REFERENCE,
        REASON,
        TAG,
        # The nursery tests/e2e/world.py built: display names, rooms, device names.
        "amira",
        "grace",
        "Ava",
        "Noah",
        "Robins",
        "Wrens",
        "amira's laptop",
    ]
    for row, entry in zip(rows, stored, strict=True):
        for needle in needles:
            for form in _forms(needle):
                assert form not in entry, (
                    f"audit entry {row['seq']} ({row['action']}) holds {needle!r}: {entry}"
                )
