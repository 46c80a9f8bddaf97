"""Invitations (issue 14, part 3; docs/decisions/0014-invitations.md): a share to an outside
recipient with no device comes with a one-time enrolment code bound to that recipient and
that share, which enrols exactly one device as that person through ``POST /v1/enrol`` and
gives nothing to read by itself. On both databases (the ``service`` fixture); the flood
test on a service of its own with small limits.

Negative tests first: a reused code, a revoked share's code, an expired code (at the exact
instant, by the catalog's clock), a wrong code, another principal's code; each refusal is
audited and enrols nothing.
"""

from __future__ import annotations

import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from keyservice.enrolment import EnrolmentRefused, enrol_device
from tests.keyservice.conftest import database
from tests.keyservice.helpers import (
    Device,
    StoredRecord,
    add_guardian,
    admin_enrols,
    assigned_staff,
    b64,
    bootstrap_admin,
    create_principal,
    enrol,
    ok,
    put_record,
    release,
)
from tests.servers import KeyService, KeyServiceFactory

pytestmark = pytest.mark.integration

_used_sources: set[str] = set()


def _source() -> str:
    """An address of its own (TEST-NET-3), so the audit of its refusals is never coalesced
    with another test's."""
    while (address := f"203.0.113.{secrets.randbelow(250) + 1}") in _used_sources:
        continue
    _used_sources.add(address)
    return address


def _enrol(service: KeyService, code: str, *, source: str) -> httpx.Response:
    return httpx.post(
        f"{service.base_url}/v1/enrol",
        json={
            "code": code,
            "device_name": "phone",
            "signing_key": b64(secrets.token_bytes(32)),
            "receiving_key": b64(secrets.token_bytes(32)),
        },
        headers={"X-Forwarded-For": source},
        timeout=30.0,
    )


def _refusals(engine: Engine, source: str) -> list[dict[str, Any]]:
    """The details of the ``device.enrol`` denials from ``source``, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT detail FROM audit_entries WHERE action = 'device.enrol' "
                "AND outcome = 'deny' ORDER BY seq"
            )
        ).scalars()
        found = [json.loads(detail) for detail in rows]
    return [detail for detail in found if detail.get("source") == source]


def _devices(engine: Engine, principal_id: str) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT origin, vouched_by FROM devices WHERE principal_id = :p"),
                {"p": principal_id},
            ).all()
        )


def _consent(guardian: Device, *, child: str, recipient_id: str) -> str:
    with guardian.client() as http:
        return str(
            ok(
                http.post(
                    "/v1/consents",
                    json={
                        "child_id": child,
                        "given_by": guardian.principal_id,
                        "recipient_id": recipient_id,
                        "categories": ["observation", "medical"],
                        "purpose": "referral",
                    },
                )
            )["consent_id"]
        )


def _family(service: KeyService, admin: Device) -> dict[str, Any]:
    """A child with a DSL and a guardian who consented to share observations with a social
    worker who has no device yet, and an observation to share."""
    dsl, child = assigned_staff(service, admin, role="dsl")
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    worker = create_principal(admin, kind="external", organisation="County")
    return {
        "child": child,
        "dsl": dsl,
        "guardian": guardian,
        "worker": worker,
        "consent": _consent(guardian, child=child, recipient_id=worker),
        "obs": put_record(dsl, child_ids=[child]),
    }


@pytest.fixture
def family(service: KeyService, admin: Device) -> dict[str, Any]:
    return _family(service, admin)


def _share(family: dict[str, Any], *records: StoredRecord, **extra: Any) -> Any:
    body = {
        "recipient_id": family["worker"],
        "basis": "consent",
        "basis_id": family["consent"],
        "purpose": "referral to the county social work team",
        "record_ids": [r.record_id for r in (records or (family["obs"],))],
        **extra,
    }
    with family["dsl"].client() as http:
        return ok(http.post("/v1/shares", json=body))


def _granted(device: Device, record: StoredRecord) -> bool:
    _, results = release(device, [(record.record_id, record.version)])
    return results[(record.record_id, record.version)]["status"] == "granted"


def test_a_reused_invitation_enrols_no_second_device_and_is_audited(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    code = _share(family)["invitation"]["code"]
    enrol(service.base_url, code)
    source = _source()
    again = _enrol(service, code, source=source)
    assert again.status_code == 400
    assert again.headers["content-type"].startswith("application/problem+json")
    assert [(d["reason"], d["code_principal"]) for d in _refusals(service_db, source)] == [
        ("used_code", family["worker"])
    ]
    assert len(_devices(service_db, family["worker"])) == 1


def test_the_invitation_of_a_revoked_share_is_refused(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    made = _share(family)
    with family["dsl"].client() as http:
        ok(http.post(f"/v1/shares/{made['share_id']}/revoke", json={"reason": "sent in error"}))
    source = _source()
    assert _enrol(service, made["invitation"]["code"], source=source).status_code == 400
    assert [d["reason"] for d in _refusals(service_db, source)] == ["share_revoked"]
    assert _devices(service_db, family["worker"]) == []


def test_the_invitation_of_a_share_whose_consent_was_withdrawn_is_refused(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    made = _share(family)
    with family["guardian"].client() as http:
        withdraw = f"/v1/consents/{family['consent']}/withdraw"
        ok(http.post(withdraw, json={"reason": "changed my mind"}))
    source = _source()
    refused = _enrol(service, made["invitation"]["code"], source=source)
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [(d["reason"], d["code_principal"]) for d in _refusals(service_db, source)] == [
        ("basis_withdrawn", family["worker"])
    ]
    assert _devices(service_db, family["worker"]) == []


def test_an_invitation_expires_with_its_share_and_within_seven_days(
    family: dict[str, Any],
) -> None:
    default = _share(family)  # the share lasts 14 days; its invitation 7
    created = datetime.fromisoformat(default["created_at"])
    assert datetime.fromisoformat(default["invitation"]["expires_at"]) == created + timedelta(
        days=7
    )
    end = created + timedelta(days=2)
    short = _share(family, valid_to=end.isoformat())
    assert datetime.fromisoformat(short["invitation"]["expires_at"]) == end


def test_an_invitation_is_refused_from_the_instant_it_expires(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    """The service has no fixed clock, so the catalog's enrolment (which takes ``now``) is
    asked on the service's database at the instants around the code's expiry, and rolled
    back; then the service itself refuses a code whose expiry has passed."""
    invitation = _share(family)["invitation"]
    expires = datetime.fromisoformat(invitation["expires_at"])

    def enrols(now: datetime) -> str:
        with service_db.connect() as db:
            try:
                enrolled = enrol_device(
                    db,
                    code=invitation["code"],
                    device_name="phone",
                    signing_key=secrets.token_bytes(32),
                    receiving_key=secrets.token_bytes(32),
                    now=now,
                )
            except EnrolmentRefused as refused:
                return refused.reason
            finally:
                db.rollback()
        return enrolled.origin

    assert enrols(expires - timedelta(microseconds=1)) == "invited"
    assert enrols(expires) == "expired_code"
    with service_db.begin() as connection:
        connection.execute(
            text("UPDATE enrolment_codes SET expires_at = :past WHERE principal_id = :p"),
            {"past": datetime.now(expires.tzinfo) - timedelta(seconds=1), "p": family["worker"]},
        )
    source = _source()
    assert _enrol(service, invitation["code"], source=source).status_code == 400
    assert [d["reason"] for d in _refusals(service_db, source)] == ["expired_code"]


def test_a_wrong_code_is_refused_and_audited_and_the_right_one_still_enrols(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    code = _share(family)["invitation"]["code"]
    wrong = ("B" if code[0] == "A" else "A") + code[1:]
    source = _source()
    refused = _enrol(service, wrong, source=source)
    assert refused.status_code == 400
    # A wrong code names nobody: the audit cannot, and must not, guess whose it was.
    assert _refusals(service_db, source) == [{"reason": "unknown_code", "source": source}]
    assert _devices(service_db, family["worker"]) == []
    assert enrol(service.base_url, code).principal_id == family["worker"]


def test_another_principals_invitation_enrols_that_principal_only(
    service: KeyService, admin: Device, family: dict[str, Any]
) -> None:
    """Whoever holds a code enrols as the principal it was issued for, and reads only that
    principal's shares: a social worker given a colleague's code cannot enrol as themselves
    with it, nor read their own share with the device it gives."""
    colleague = create_principal(admin, kind="external", organisation="County")
    colleague_consent = _consent(family["guardian"], child=family["child"], recipient_id=colleague)
    medical = put_record(family["dsl"], child_ids=[family["child"]], category="medical")
    mine = _share(family)
    theirs = _share({**family, "worker": colleague, "consent": colleague_consent}, medical)
    device = enrol(service.base_url, theirs["invitation"]["code"])
    assert device.principal_id == colleague
    assert _granted(device, medical)
    assert not _granted(device, family["obs"])
    own = enrol(service.base_url, mine["invitation"]["code"])
    assert own.principal_id == family["worker"]
    assert _granted(own, family["obs"])
    assert not _granted(own, medical)


def test_no_invitation_for_a_recipient_who_has_a_device(
    service: KeyService, admin: Device, family: dict[str, Any]
) -> None:
    agency = admin_enrols(service, admin, kind="external", organisation="Health")
    consent = _consent(family["guardian"], child=family["child"], recipient_id=agency.principal_id)
    made = _share({**family, "worker": agency.principal_id, "consent": consent})
    assert made["invitation"] is None
    assert _granted(agency, family["obs"])


def test_the_invited_device_is_vouched_for_by_the_creator_and_reads_only_through_the_share(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    made = _share(family)
    device = enrol(service.base_url, made["invitation"]["code"])
    assert [tuple(row) for row in _devices(service_db, family["worker"])] == [
        ("invited", family["dsl"].principal_id)
    ]
    with service_db.connect() as connection:
        detail = json.loads(
            connection.execute(
                text(
                    "SELECT detail FROM audit_entries WHERE action = 'device.enrol' "
                    "AND outcome = 'allow' AND actor_device = :d"
                ),
                {"d": device.device_id},
            ).scalar_one()
        )
    assert (detail["origin"], detail["share_id"], detail["vouched_by"]) == (
        "invited",
        made["share_id"],
        family["dsl"].principal_id,
    )
    assert _granted(device, family["obs"])
    with family["dsl"].client() as http:
        ok(http.post(f"/v1/shares/{made['share_id']}/revoke", json={"reason": "done"}))
    assert not _granted(device, family["obs"])


def test_no_invitation_while_the_recipient_could_read_what_the_creator_may_not(
    service: KeyService, admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    """Another child's DSL shares with the same social worker: the first DSL's invitation,
    issued before, no longer enrols (its holder would read the other child's record), and
    the first DSL's next share comes without one."""
    early = _share(family)
    other = _family(service, admin)
    _share(
        {
            **other,
            "worker": family["worker"],
            "consent": _consent(
                other["guardian"], child=other["child"], recipient_id=family["worker"]
            ),
        }
    )
    source = _source()
    assert _enrol(service, early["invitation"]["code"], source=source).status_code == 400
    assert [d["reason"] for d in _refusals(service_db, source)] == ["stale_code"]
    assert _share(family)["invitation"] is None
    assert _devices(service_db, family["worker"]) == []


def test_two_invitations_spent_at_once_enrol_one_device(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    codes = [_share(family)["invitation"]["code"] for _ in range(2)]
    start = threading.Barrier(len(codes))
    source = _source()

    def spend(code: str) -> int:
        start.wait()
        return _enrol(service, code, source=source).status_code

    with ThreadPoolExecutor(max_workers=len(codes)) as pool:
        statuses = sorted(pool.map(spend, codes))
    assert statuses == [200, 400]
    assert len(_devices(service_db, family["worker"])) == 1
    assert [d["reason"] for d in _refusals(service_db, source)] == ["stale_code"]


LIMIT = 10
FLOOD = 40


@pytest.fixture(scope="module")
def limited(keyservice_factory: KeyServiceFactory) -> KeyService:
    return keyservice_factory(
        flavour="embedded",
        extra_env={
            "CAREVAULT_REJECT_WINDOW_SECONDS": "60",
            "CAREVAULT_REJECT_LIMIT": str(LIMIT),
            "CAREVAULT_REJECT_AUDIT_EACH": "3",
        },
    )


def test_guessing_near_an_invitation_code_is_rate_limited(limited: KeyService) -> None:
    """Codes one character off a real invitation, from one address: refused and audited,
    then 429; the invitation itself still enrols, from the recipient's own address."""
    family = _family(limited, bootstrap_admin(limited))
    code = _share(family)["invitation"]["code"]
    source = _source()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    # The last character always differs from the code's, so no guess is the code.
    guesses = [
        code[:-2]
        + alphabet[(alphabet.index(code[-2]) + i // 31) % 32]
        + alphabet[(alphabet.index(code[-1]) + 1 + i % 31) % 32]
        for i in range(FLOOD)
    ]
    statuses = [_enrol(limited, guess, source=source).status_code for guess in guesses]
    assert statuses == [400] * LIMIT + [429] * (FLOOD - LIMIT)
    engine = database(limited)
    try:
        refusals = _refusals(engine, source)
    finally:
        engine.dispose()
    assert refusals[:3] == [{"reason": "unknown_code", "source": source}] * 3
    # Even the right code is held back from that address until its window ends.
    assert _enrol(limited, code, source=source).status_code == 429
    assert _enrol(limited, code, source=_source()).status_code == 200
