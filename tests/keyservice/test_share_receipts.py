"""Receipts of shares (issue 14, part 4, key service side): the recipient's signed
acknowledgement, the first opening, each share's status and the overdue listing. On both
databases (the ``service`` fixture).

Negative tests first: every refused acknowledgement stores nothing, is audited, and a share
of someone else is the 404 of an unknown one.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from keyservice.caller import Caller
from keyservice.catalog import share_receipts, shares
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    StoredRecord,
    add_guardian,
    admin_enrols,
    assigned_staff,
    b64,
    enrol,
    guardian_consent,
    ok,
    own_code,
    put_record,
    release,
    unb64,
)
from tests.servers import KeyService
from vault.receipts import ReceivedItem, receipt_statement, receipt_valid, sign_receipt

pytestmark = pytest.mark.integration

UNKNOWN = "0" * 32
TICK = timedelta(microseconds=1)


@pytest.fixture
def shared(service: KeyService, admin: Device) -> dict[str, Any]:
    """A DSL's share of two records with an agency, on a guardian's consent, due to be
    acknowledged within a day."""
    dsl, child = assigned_staff(service, admin, role="dsl")
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    agency = admin_enrols(service, admin, kind="external", organisation="County")
    consent = guardian_consent(
        guardian,
        child_id=child,
        recipient_id=agency.principal_id,
        categories=["observation", "medical"],
        purpose="transfer",
    )
    obs = put_record(dsl, child_ids=[child], ciphertext=b"observation ciphertext")
    medical = put_record(dsl, child_ids=[child], category="medical", ciphertext=b"medical")
    made = ok(
        _share(
            dsl,
            {
                "recipient_id": agency.principal_id,
                "basis": "consent",
                "basis_id": consent,
                "purpose": "transfer to the new school",
                "record_ids": [obs.record_id, medical.record_id],
                "ack_due": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            },
        )
    )
    return {
        "dsl": dsl,
        "child": child,
        "agency": agency,
        "consent": consent,
        "obs": obs,
        "medical": medical,
        "share": made,
        "id": made["share_id"],
    }


def _share(device: Device, body: dict[str, Any]) -> httpx.Response:
    with device.client() as http:
        return http.post("/v1/shares", json=body)


def _item(record: StoredRecord, *, version: int | None = None, data: bytes | None = None) -> Any:
    digest = hashlib.sha256(record.ciphertext if data is None else data).digest()
    return ReceivedItem(record.record_id, record.version if version is None else version, digest)


def _received(shared: dict[str, Any]) -> list[ReceivedItem]:
    return [_item(shared["obs"]), _item(shared["medical"])]


def _ack(
    device: Device,
    share_id: str,
    items: list[ReceivedItem],
    *,
    signer: Device | None = None,
    signature: bytes | None = None,
) -> httpx.Response:
    """Acknowledge as ``device``, the receipt signed by ``signer`` (default: ``device``) for
    itself, unless a ``signature`` is given."""
    signer = signer or device
    if signature is None:
        signature = sign_receipt(
            signer.signing_key,
            share_id=share_id,
            principal_id=signer.principal_id,
            device_id=signer.device_id,
            items=items,
        )
    body = {
        "items": [
            {
                "record_id": item.record_id,
                "version": item.version,
                "ciphertext_sha256": b64(item.ciphertext_sha256),
            }
            for item in items
        ],
        "signature": b64(signature),
    }
    with device.client() as http:
        return http.post(f"/v1/shares/{share_id}/ack", json=body)


def _shown(device: Device, share_id: str) -> Any:
    with device.client() as http:
        return ok(http.get(f"/v1/shares/{share_id}"))


def _stored(engine: Engine, share_id: str) -> tuple[Any, Any, Any]:
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT opened_at, acknowledged_at, acknowledged_device FROM shares "
                "WHERE share_id = :s"
            ),
            {"s": share_id},
        ).one()
    return row.opened_at, row.acknowledged_at, row.acknowledged_device


def _refused(
    response: httpx.Response, engine: Engine, device: Device, *, status: int, reason: str
) -> dict[str, Any]:
    """The refusal's status and problem body, and its audited reason; its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    outcome, detail = last_audit_entry(engine, principal_id=device.principal_id, action="share.ack")
    assert (outcome, detail["reason"], detail["status"]) == ("deny", reason, status)
    return detail


def _caller(device: Device, kind: str = "staff") -> Caller:
    return Caller(
        principal_id=device.principal_id,
        kind=kind,
        roles=frozenset({"dsl"}) if kind == "staff" else frozenset(),
        device_id=device.device_id,
        display_name="Test",
        organisation=None,
        receiving_key=b"\0" * 32,
        nonce="n",
    )


def test_a_bad_signature_is_refused_audited_and_nothing_is_stored(
    shared: dict[str, Any], service_db: Engine
) -> None:
    agency, share_id = shared["agency"], shared["id"]
    items = _received(shared)
    good = sign_receipt(
        agency.signing_key,
        share_id=share_id,
        principal_id=agency.principal_id,
        device_id=agency.device_id,
        items=items,
    )
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    statement = receipt_statement(
        share_id=share_id,
        principal_id=agency.principal_id,
        device_id=agency.device_id,
        items=items,
    )
    # The device's own key over the statement without its domain prefix.
    bare = agency.signing_key.sign(statement.removeprefix(b"carevault-receipt-v1\n"))
    for signature in (flipped, bytes(64), bare, good[:32]):
        refused = _ack(agency, share_id, items, signature=signature)
        _refused(refused, service_db, agency, status=422, reason="bad_signature")
        assert "signature" in refused.json()["detail"]
    assert _stored(service_db, share_id)[1:] == (None, None)


def test_a_receipt_signed_by_another_device_of_the_recipient_is_refused(
    service: KeyService, shared: dict[str, Any], service_db: Engine
) -> None:
    agency, share_id = shared["agency"], shared["id"]
    laptop = enrol(service.base_url, own_code(agency))
    items = _received(shared)
    # The laptop's receipt for itself, sent by the first device; and one naming the first
    # device but signed with the laptop's key.
    refused = _ack(agency, share_id, items, signer=laptop)
    _refused(refused, service_db, agency, status=422, reason="bad_signature")
    borrowed = laptop.signing_key.sign(
        receipt_statement(
            share_id=share_id,
            principal_id=agency.principal_id,
            device_id=agency.device_id,
            items=items,
        )
    )
    refused = _ack(agency, share_id, items, signature=borrowed)
    _refused(refused, service_db, agency, status=422, reason="bad_signature")
    assert _stored(service_db, share_id)[1:] == (None, None)
    # Each device can acknowledge for itself.
    assert ok(_ack(laptop, share_id, items))["acknowledged_device"] == laptop.device_id


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("missing", "missing: {medical} v1"),
        ("extra", "not in the share: {other} v1"),
        ("wrong_version", "missing: {obs} v1; not in the share: {obs} v2"),
        ("wrong_digest", "digest differs from the committed ciphertext: {obs} v1"),
    ],
)
def test_items_that_are_not_exactly_the_shares_are_refused_naming_what_differs(
    shared: dict[str, Any], service_db: Engine, case: str, named: str
) -> None:
    agency, obs, medical = shared["agency"], shared["obs"], shared["medical"]
    other = put_record(shared["dsl"], child_ids=[shared["child"]])
    items = {
        "missing": [_item(obs)],
        "extra": [*_received(shared), _item(other)],
        "wrong_version": [_item(obs, version=2), _item(medical)],
        "wrong_digest": [_item(obs, data=b"something else"), _item(medical)],
    }[case]
    refused = _ack(agency, shared["id"], items)
    detail = _refused(refused, service_db, agency, status=422, reason="items_differ")
    expected = named.format(obs=obs.record_id, medical=medical.record_id, other=other.record_id)
    assert expected in refused.json()["detail"]
    assert detail["share_id"] == shared["id"]
    assert _stored(service_db, shared["id"])[1:] == (None, None)
    assert _shown(shared["dsl"], shared["id"])["status"] == "sent"


def test_someone_elses_share_is_the_404_of_an_unknown_one(
    service: KeyService, admin: Device, shared: dict[str, Any], service_db: Engine
) -> None:
    stranger = admin_enrols(service, admin, kind="external", organisation="Elsewhere")
    items = _received(shared)
    theirs = _ack(stranger, shared["id"], items)
    unknown = _ack(stranger, UNKNOWN, items)
    # The share's creator is not its recipient either.
    creator = _ack(shared["dsl"], shared["id"], items)
    assert theirs.status_code == unknown.status_code == creator.status_code == 404
    assert theirs.json() == unknown.json() == creator.json()
    _refused(creator, service_db, shared["dsl"], status=404, reason="unknown")
    _refused(unknown, service_db, stranger, status=404, reason="unknown")
    assert _stored(service_db, shared["id"])[1:] == (None, None)


def test_a_revoked_share_cannot_be_acknowledged(shared: dict[str, Any], service_db: Engine) -> None:
    with shared["dsl"].client() as http:
        ok(http.post(f"/v1/shares/{shared['id']}/revoke", json={"reason": "wrong school"}))
    refused = _ack(shared["agency"], shared["id"], _received(shared))
    _refused(refused, service_db, shared["agency"], status=409, reason="revoked")
    assert _stored(service_db, shared["id"])[1:] == (None, None)


def test_a_share_is_acknowledged_once_and_the_audit_keeps_a_verifiable_receipt(
    shared: dict[str, Any], service_db: Engine
) -> None:
    agency, share_id = shared["agency"], shared["id"]
    items = _received(shared)
    # In any order: the statement sorts the items.
    done = ok(_ack(agency, share_id, items[::-1]))
    assert done["status"] == "acknowledged" and done["overdue"] is False
    assert done["acknowledged_device"] == agency.device_id
    _, acknowledged_at, device = _stored(service_db, share_id)
    assert acknowledged_at is not None and device == agency.device_id
    outcome, detail = last_audit_entry(
        service_db, principal_id=agency.principal_id, action="share.ack"
    )
    assert outcome == "allow" and detail["share_id"] == share_id and detail["items"] == 2
    statement = detail["statement"].encode("ascii")
    assert statement == receipt_statement(
        share_id=share_id,
        principal_id=agency.principal_id,
        device_id=agency.device_id,
        items=items,
    )
    assert unb64(detail["signing_key"]) == agency.signing_key.public_key().public_bytes_raw()
    assert receipt_valid(unb64(detail["signing_key"]), statement, unb64(detail["signature"]))
    again = _ack(agency, share_id, items)
    _refused(again, service_db, agency, status=409, reason="acknowledged")
    assert _stored(service_db, share_id)[1] == acknowledged_at
    assert _shown(shared["dsl"], share_id)["acknowledged_at"] == done["acknowledged_at"]


def test_the_first_release_through_the_share_opens_it_and_later_ones_do_not_move_it(
    shared: dict[str, Any], service_db: Engine
) -> None:
    agency, dsl, obs, share_id = shared["agency"], shared["dsl"], shared["obs"], shared["id"]
    assert shared["share"]["status"] == "sent" and shared["share"]["opened_at"] is None
    # The creator's own release is not an opening.
    _, results = release(dsl, [(obs.record_id, obs.version)])
    assert results[(obs.record_id, obs.version)]["status"] == "granted"
    assert _stored(service_db, share_id)[0] is None
    _, results = release(agency, [(obs.record_id, obs.version)])
    assert results[(obs.record_id, obs.version)]["status"] == "granted"
    first = _shown(dsl, share_id)
    assert first["status"] == "opened" and first["opened_at"] is not None
    release(agency, [(obs.record_id, obs.version)])
    release(agency, [(shared["medical"].record_id, 1)])
    assert _shown(dsl, share_id)["opened_at"] == first["opened_at"]


def test_a_denied_release_does_not_open_the_share(
    shared: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = shared["agency"], shared["obs"]
    # A version the share does not list is denied and opens nothing.
    amended = put_record(shared["dsl"], child_ids=[shared["child"]], amend=obs.record_id)
    _, results = release(agency, [(obs.record_id, amended.version)])
    assert results[(obs.record_id, amended.version)]["status"] == "denied"
    assert _stored(service_db, shared["id"])[0] is None


def test_status_at_fixed_instants_sent_opened_expired_acknowledged_revoked(
    shared: dict[str, Any], service_db: Engine
) -> None:
    """The service runs on the wall clock, so the status is asked of the catalog, on the
    service's database, at instants around each change."""
    dsl, agency, share_id = shared["dsl"], shared["agency"], shared["id"]
    creator = _caller(dsl)

    def seen(now: datetime) -> tuple[str, bool]:
        with service_db.connect() as db:
            found = shares.show_share(db, creator, share_id)
        return share_receipts.status_of(found, now=now), share_receipts.is_overdue(found, now=now)

    made = shared["share"]
    start = datetime.fromisoformat(made["valid_from"])
    end = datetime.fromisoformat(made["valid_to"])
    due = datetime.fromisoformat(made["ack_due"])
    assert seen(start) == ("sent", False)
    assert seen(due) == ("sent", False)  # the deadline itself is still on time
    assert seen(due + TICK) == ("sent", True)
    release(agency, [(shared["obs"].record_id, 1)])
    opened = datetime.fromisoformat(_shown(dsl, share_id)["opened_at"])
    assert seen(opened) == ("opened", False)
    assert seen(due + TICK) == ("opened", True)
    assert seen(end - TICK) == ("opened", True)
    assert seen(end) == ("expired", True)  # never acknowledged: still to chase
    ok(_ack(agency, share_id, _received(shared)))
    assert seen(end - TICK) == ("acknowledged", False)
    assert seen(end + timedelta(days=30)) == ("acknowledged", False)
    with dsl.client() as http:
        revoked = ok(http.post(f"/v1/shares/{share_id}/revoke", json={"reason": "closed"}))
    revoked_at = datetime.fromisoformat(revoked["revoked_at"])
    assert revoked["status"] == "revoked" and revoked["acknowledged_at"] is not None
    assert seen(revoked_at - TICK) == ("acknowledged", False)
    assert seen(revoked_at) == ("revoked", False)


def test_the_overdue_list_holds_the_creators_unacknowledged_shares_past_their_deadline(
    shared: dict[str, Any], service_db: Engine
) -> None:
    dsl, agency, share_id = shared["dsl"], shared["agency"], shared["id"]
    due = datetime.fromisoformat(shared["share"]["ack_due"])
    # Another share, without a deadline: never overdue.
    ok(
        _share(
            dsl,
            {
                "recipient_id": agency.principal_id,
                "basis": "consent",
                "basis_id": shared["consent"],
                "purpose": "no deadline",
                "record_ids": [shared["obs"].record_id],
            },
        )
    )

    def overdue(device: Device, now: datetime) -> list[str]:
        with service_db.connect() as db:
            return share_receipts.overdue_ids(db, _caller(device), now=now)

    assert overdue(dsl, due) == []
    assert overdue(dsl, due + TICK) == [share_id]
    assert overdue(agency, due + TICK) == []  # the recipient's list is of what it made
    ok(_ack(agency, share_id, _received(shared)))
    assert overdue(dsl, due + TICK) == []


def test_the_overdue_route_lists_a_share_once_its_deadline_passes_and_not_once_revoked(
    shared: dict[str, Any],
) -> None:
    """Through the real service's wall clock: just before and just after the deadline."""
    dsl, agency = shared["dsl"], shared["agency"]
    due = datetime.now(UTC) + timedelta(seconds=3)
    made = ok(
        _share(
            dsl,
            {
                "recipient_id": agency.principal_id,
                "basis": "consent",
                "basis_id": shared["consent"],
                "purpose": "due in seconds",
                "record_ids": [shared["obs"].record_id],
                "ack_due": due.isoformat(),
            },
        )
    )
    assert datetime.fromisoformat(made["ack_due"]) == due and made["overdue"] is False

    def listed(device: Device) -> list[Any]:
        with device.client() as http:
            return list(ok(http.get("/v1/shares", params={"overdue": "true"})))

    assert listed(dsl) == []
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.2)
    late = listed(dsl)
    assert [s["share_id"] for s in late] == [made["share_id"]]
    assert late[0]["overdue"] is True and late[0]["status"] == "sent"
    assert listed(agency) == []
    with dsl.client() as http:
        ok(http.post(f"/v1/shares/{made['share_id']}/revoke", json={"reason": "chased"}))
    assert listed(dsl) == []


@pytest.mark.parametrize(
    ("when", "why"),
    [
        (lambda now, end: now - timedelta(minutes=1), "in the future"),
        (lambda now, end: end + timedelta(seconds=1), "after the share ends"),
    ],
)
def test_an_acknowledgement_deadline_in_the_past_or_after_the_share_ends_is_refused(
    shared: dict[str, Any], service_db: Engine, when: Any, why: str
) -> None:
    dsl = shared["dsl"]
    end = datetime.now(UTC) + timedelta(days=2)
    body = {
        "recipient_id": shared["agency"].principal_id,
        "basis": "consent",
        "basis_id": shared["consent"],
        "purpose": "bad deadline",
        "record_ids": [shared["obs"].record_id],
        "valid_to": end.isoformat(),
        "ack_due": when(datetime.now(UTC), end).isoformat(),
    }
    refused = _share(dsl, body)
    assert refused.status_code == 422, refused.text
    assert why in refused.json()["detail"]
    outcome, detail = last_audit_entry(
        service_db, principal_id=dsl.principal_id, action="share.create"
    )
    assert (outcome, detail["reason"]) == ("deny", "invalid")
    with service_db.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM shares WHERE purpose = 'bad deadline'")
        ).scalar_one()
    assert count == 0
