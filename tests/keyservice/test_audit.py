"""The audit chain: tampering of every kind is named by ``audit verify``, and a release whose
audit entry cannot be written returns 503 with no key (fail closed). Both databases."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, select, text

from keyservice.audit.chain import entry_hash
from keyservice.audit.mac import AuditMac
from keyservice.db.tables import audit_entries
from tests.keyservice.conftest import database
from tests.keyservice.helpers import (
    assigned_staff,
    bootstrap_admin,
    put_record,
    release,
    verify_audit,
)
from tests.servers import KeyService, KeyServiceFactory, run_keyservice_command

pytestmark = pytest.mark.integration

FLAVOURS = ["embedded", "production"]


@pytest.fixture(params=FLAVOURS)
def fresh(
    request: pytest.FixtureRequest, keyservice_factory: KeyServiceFactory
) -> Iterator[tuple[KeyService, Engine]]:
    """A service of its own with a dozen audit entries, and a connection to its database."""
    service = keyservice_factory(flavour=request.param)
    educator, child = assigned_staff(service, bootstrap_admin(service))
    record = put_record(educator, child_ids=[child])
    release(educator, [(record.record_id, 1)])
    engine = database(service)
    yield service, engine
    engine.dispose()
    service.stop()


def _rows(connection: Connection) -> list[dict[str, object]]:
    return [
        dict(r._mapping)
        for r in connection.execute(select(audit_entries).order_by(audit_entries.c.seq))
    ]


def test_intact_chain_verifies(fresh: tuple[KeyService, Engine]) -> None:
    service, _ = fresh
    output = verify_audit(service, exit_code=0)
    assert "intact" in output


@pytest.mark.parametrize(
    ("tampering", "named"),
    [
        (["UPDATE audit_entries SET outcome = 'deny' WHERE seq = 4"], 4),
        (["DELETE FROM audit_entries WHERE seq = 5"], 5),
        (
            [
                "UPDATE audit_entries SET seq = -1 WHERE seq = 6",
                "UPDATE audit_entries SET seq = 6 WHERE seq = 7",
                "UPDATE audit_entries SET seq = 7 WHERE seq = -1",
            ],
            6,
        ),
    ],
    ids=["altered", "deleted", "reordered"],
)
def test_a_tampered_entry_is_named(
    fresh: tuple[KeyService, Engine], tampering: list[str], named: int
) -> None:
    service, engine = fresh
    with engine.begin() as connection:
        for statement in tampering:
            connection.execute(text(statement))
    output = verify_audit(service, exit_code=1)
    assert f"entry {named}" in output


def test_inserted_entry_is_named(fresh: tuple[KeyService, Engine]) -> None:
    """A forged entry slipped in at 3, linked to entry 2 and MACed under a key of the forger's
    own (theirs is not the service's): it is named itself."""
    service, engine = fresh
    with engine.begin() as connection:
        rows = _rows(connection)
        for row in reversed(rows[2:]):
            connection.execute(
                text("UPDATE audit_entries SET seq = seq + 1 WHERE seq = :s"), {"s": row["seq"]}
            )
        forged = dict(rows[2])
        forged.update(
            seq=3,
            action="device.revoke",
            detail=json.dumps({"forged": True}),
            prev_hash=rows[1]["hash"],
        )
        forged["hash"] = entry_hash(
            mac=AuditMac(secrets.token_bytes(32)),
            seq=3,
            at=forged["at"],
            actor_principal=forged["actor_principal"],
            actor_device=forged["actor_device"],
            action=forged["action"],
            outcome=forged["outcome"],
            detail=forged["detail"],
            prev_hash=forged["prev_hash"],
        )
        connection.execute(
            text(
                "INSERT INTO audit_entries (seq, at, actor_principal, actor_device, action, "
                "outcome, detail, prev_hash, hash) VALUES (:seq, :at, :actor_principal, "
                ":actor_device, :action, :outcome, :detail, :prev_hash, :hash)"
            ),
            forged,
        )
    output = verify_audit(service, exit_code=1)
    assert "entry 3" in output


def test_truncated_tail_is_caught_by_the_signed_checkpoint(
    fresh: tuple[KeyService, Engine],
) -> None:
    """Cutting the newest entries and moving the head back leaves every link intact; only
    the signed checkpoint still remembers how long the chain was."""
    service, engine = fresh
    signed = run_keyservice_command(service.env, "audit", "checkpoint").stdout
    last = int(signed.split("seq ")[1].split()[0])
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entries WHERE seq > :s"), {"s": last - 3})
        new_head = connection.execute(
            text("SELECT hash FROM audit_entries WHERE seq = :s"), {"s": last - 3}
        ).scalar_one()
        connection.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": last - 3, "h": new_head}
        )
    output = verify_audit(service, exit_code=1)
    assert f"entry {last - 2}" in output


_READ_ONLY = {
    "sqlite": [
        "CREATE TRIGGER audit_read_only BEFORE INSERT ON audit_entries "
        "BEGIN SELECT RAISE(ABORT, 'audit is read-only'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION audit_refuse() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'audit is read-only'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit_read_only BEFORE INSERT ON audit_entries "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse()",
    ],
}


def test_release_fails_closed_when_the_audit_cannot_be_written(
    fresh: tuple[KeyService, Engine],
) -> None:
    service, engine = fresh
    educator, child = assigned_staff(service, bootstrap_admin(service))
    record = put_record(educator, child_ids=[child])
    with engine.begin() as connection:
        for statement in _READ_ONLY[engine.dialect.name]:
            connection.execute(text(statement))
        disclosed_before = connection.execute(text("SELECT count(*) FROM disclosures")).scalar()
    with educator.client() as http:
        refused = http.post(
            "/v1/keys/release", json={"items": [{"record_id": record.record_id, "version": 1}]}
        )
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "sealed_key" not in refused.text
    assert "ephemeral_public" not in refused.text
    with engine.begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM disclosures")).scalar() == (
            disclosed_before
        )
        connection.execute(
            text(
                "DROP TRIGGER audit_read_only"
                + (" ON audit_entries" if engine.dialect.name == "postgresql" else "")
            )
        )
    _, results = release(educator, [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "granted"


def test_a_stuck_audit_fails_the_request_instead_of_freezing(
    fresh: tuple[KeyService, Engine],
) -> None:
    """Another transaction holds the audit chain's head; the request gives up with 503."""
    service, engine = fresh
    admin = bootstrap_admin(service)
    holder = engine.connect()
    try:
        if engine.dialect.name == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        holder.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
        with admin.client() as http:
            response = http.get("/v1/children")
        assert response.status_code == 503
    finally:
        holder.rollback()
        holder.close()
