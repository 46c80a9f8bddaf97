"""A commit asks the policy again: a pending version whose author may no longer add records for
every child of the record is not committed (security review, finding 7)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from keyservice.db.tables import audit_entries, record_versions
from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    assign,
    commit,
    commit_claim,
    create_child,
    ok,
    pending_version,
    release,
    upload_whole,
)
from tests.servers import KeyService

pytestmark = pytest.mark.integration

CIPHERTEXT = b"ciphertext of a version whose author lost the right to add it"


def _pending_and_uploaded(device: Device, child_ids: list[str]) -> dict[str, Any]:
    created = pending_version(device, child_ids=child_ids, ciphertext_size=len(CIPHERTEXT))
    upload_whole(created, CIPHERTEXT)
    return created


def _commit(device: Device, created: dict[str, Any]) -> httpx.Response:
    return commit(device, created, commit_claim(CIPHERTEXT))


def _end(admin: Device, assignment_id: str) -> None:
    with admin.client() as http:
        ok(http.post(f"/v1/admin/assignments/{assignment_id}/end"))


def _state(service_db: Engine, created: dict[str, Any]) -> str:
    with service_db.connect() as connection:
        return str(
            connection.execute(
                select(record_versions.c.state).where(
                    record_versions.c.record_id == created["record_id"],
                    record_versions.c.version == created["version"],
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("children", [1, 2], ids=["one_child", "one_of_two_children"])
def test_a_version_is_not_committed_after_its_authors_assignment_ended(
    service: KeyService, admin: Device, service_db: Engine, children: int
) -> None:
    child_ids = [create_child(admin) for _ in range(children)]
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assignments = [
        assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
        for child in child_ids
    ]
    created = _pending_and_uploaded(educator, child_ids)
    _end(admin, assignments[-1])

    refused = _commit(educator, created)
    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert _state(service_db, created) == "pending"
    with service_db.connect() as connection:
        last = connection.execute(
            select(audit_entries.c.action, audit_entries.c.outcome)
            .where(audit_entries.c.actor_principal == educator.principal_id)
            .order_by(audit_entries.c.seq.desc())
            .limit(1)
        ).one()
    assert (last.action, last.outcome) == ("record.commit", "deny")

    # Reassigned, the same author commits the same pending version.
    assign(admin, staff_id=educator.principal_id, child_id=child_ids[-1], role="educator")
    assert _commit(educator, created).status_code == 204
    assert _state(service_db, created) == "committed"
    _, results = release(educator, [(created["record_id"], created["version"])])
    assert results[(created["record_id"], created["version"])]["status"] == "granted"
