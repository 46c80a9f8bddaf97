"""Shares to outside recipients (issue 14, key service side): who may make them, what they
may list, release through them while share and basis hold, refusal at once after withdrawal,
revocation or expiry, and the disclosure log. On both databases (the ``service`` fixture).

Negative tests first: every refusal changes nothing, is audited, and tells nobody whether a
record or share exists.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from keyservice.caller import Caller
from keyservice.catalog.facts import decide_row_reads
from tests.keyservice.conftest import last_audit_entry
from tests.keyservice.helpers import (
    Device,
    StoredRecord,
    add_guardian,
    admin_enrols,
    assign,
    assigned_staff,
    create_child,
    enrol,
    guardian_consent,
    ok,
    own_code,
    proposed_and_approved,
    put_record,
    release,
    unb64,
)
from tests.servers import KeyService
from vault.format import RecordAttributes
from vault.sealing import BatchOpener
from vault.signing import request_nonce, sealing_context

pytestmark = pytest.mark.integration

UNKNOWN = "0" * 32


@pytest.fixture
def family(service: KeyService, admin: Device) -> dict[str, Any]:
    """A child with a DSL, an educator, a guardian who consented to share observations with
    an agency, and records of several categories."""
    dsl, child = assigned_staff(service, admin, role="dsl")
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    guardian = admin_enrols(service, admin, kind="guardian")
    add_guardian(admin, guardian_id=guardian.principal_id, child_id=child)
    agency = admin_enrols(service, admin, kind="external", organisation="County")
    consent = guardian_consent(
        guardian,
        child_id=child,
        recipient_id=agency.principal_id,
        categories=["observation", "medical"],
        purpose="referral",
    )
    return {
        "child": child,
        "dsl": dsl,
        "educator": educator,
        "guardian": guardian,
        "agency": agency,
        "consent": consent,
        "obs": put_record(dsl, child_ids=[child]),
        "medical": put_record(dsl, child_ids=[child], category="medical"),
        "photo": put_record(dsl, child_ids=[child], category="photo"),
        "sg": put_record(dsl, child_ids=[child], category="safeguarding"),
    }


def _body(family: dict[str, Any], *records: StoredRecord, **extra: Any) -> dict[str, Any]:
    return {
        "recipient_id": family["agency"].principal_id,
        "basis": "consent",
        "basis_id": family["consent"],
        "purpose": "referral to speech therapy",
        "record_ids": [r.record_id for r in records],
        **extra,
    }


def _share(device: Device, body: dict[str, Any]) -> Any:
    with device.client() as http:
        return http.post("/v1/shares", json=body)


def _count_shares(engine: Engine, recipient_id: str) -> int:
    with engine.connect() as connection:
        count: int = connection.execute(
            text("SELECT count(*) FROM shares WHERE recipient_id = :r"), {"r": recipient_id}
        ).scalar_one()
    return count


def _granted(device: Device, record: StoredRecord) -> bool:
    _, results = release(device, [(record.record_id, record.version)])
    return results[(record.record_id, record.version)]["status"] == "granted"


def test_only_the_childs_lead_shares_and_others_get_the_same_404_audited(
    service: KeyService, admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    body = _body(family, family["obs"])
    for device in (admin, family["educator"], family["guardian"], family["agency"]):
        refused = _share(device, body)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        outcome, detail = last_audit_entry(
            service_db, principal_id=device.principal_id, action="share.create"
        )
        assert (outcome, detail["reason"]) == ("deny", "no_standing")
    # An unknown basis is the same 404 as one the caller may not use.
    unknown = _share(family["dsl"], {**body, "basis_id": UNKNOWN})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == _share(family["educator"], body).json()["detail"]
    assert _count_shares(service_db, family["agency"].principal_id) == 0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("sg", "does not cover safeguarding records"),
        ("photo", "does not cover photo records"),
    ],
)
def test_a_consent_never_shares_safeguarding_records_nor_photographs_it_does_not_name(
    family: dict[str, Any], service_db: Engine, change: str, why: str
) -> None:
    refused = _share(family["dsl"], _body(family, family["obs"], family[change]))
    assert refused.status_code == 422, refused.text
    assert why in refused.json()["detail"]
    outcome, detail = last_audit_entry(
        service_db, principal_id=family["dsl"].principal_id, action="share.create"
    )
    assert (outcome, detail["reason"]) == ("deny", "invalid")
    assert _count_shares(service_db, family["agency"].principal_id) == 0


def test_a_basis_naming_someone_else_withdrawn_or_past_its_end_refuses_the_share(
    service: KeyService, admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    other = admin_enrols(service, admin, kind="external", organisation="Elsewhere")
    dsl = family["dsl"]
    wrong = _share(dsl, {**_body(family, family["obs"]), "recipient_id": other.principal_id})
    assert wrong.status_code == 422 and "names another recipient" in wrong.json()["detail"]
    too_long = datetime.now(UTC) + timedelta(days=400)
    past_end = _share(dsl, _body(family, family["obs"], valid_to=too_long.isoformat()))
    assert past_end.status_code == 422 and "outlive its basis" in past_end.json()["detail"]
    not_external = _share(
        dsl, {**_body(family, family["obs"]), "recipient_id": family["guardian"].principal_id}
    )
    assert not_external.status_code == 422
    with family["guardian"].client() as http:
        ok(http.post(f"/v1/consents/{family['consent']}/withdraw", json={"reason": "no"}))
    withdrawn = _share(dsl, _body(family, family["obs"]))
    assert withdrawn.status_code == 422 and "withdrawn" in withdrawn.json()["detail"]
    assert _count_shares(service_db, family["agency"].principal_id) == 0


def test_an_unknown_or_unreadable_record_is_the_same_404_and_a_restrict_order_shares_nothing(
    service: KeyService, admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    dsl = family["dsl"]
    unknown = _share(dsl, {**_body(family), "record_ids": [UNKNOWN]})
    # A record of another child the DSL may not read.
    other_dsl, other_child = assigned_staff(service, admin, role="dsl")
    elsewhere = put_record(other_dsl, child_ids=[other_child])
    unreadable = _share(dsl, _body(family, elsewhere))
    assert unknown.status_code == unreadable.status_code == 404
    assert unknown.json()["detail"] == unreadable.json()["detail"]
    order = proposed_and_approved(
        dsl,
        "/v1/court-orders",
        {
            "child_id": family["child"],
            "effect": "disclose",
            "subject_id": family["agency"].principal_id,
            "categories": ["photo"],
            "reference": "FAM-1",
            "valid_from": "2020-01-01T00:00:00Z",
            "valid_to": "2099-01-01T00:00:00Z",
        },
    )
    not_covered = _share(dsl, _body(family, family["obs"], basis="court_order", basis_id=order))
    assert not_covered.status_code == 422
    assert "does not cover observation records" in not_covered.json()["detail"]
    with dsl.client() as http:
        restrict = http.post(
            "/v1/court-orders",
            json={
                "child_id": family["child"],
                "effect": "restrict_guardian",
                "subject_id": family["guardian"].principal_id,
                "categories": ["medical"],
                "reference": "FAM-2",
                "valid_from": "2020-01-01T00:00:00Z",
                "valid_to": "2099-01-01T00:00:00Z",
            },
        )
    restricting = ok(restrict)["court_order_id"]
    refused = _share(dsl, _body(family, family["obs"], basis="court_order", basis_id=restricting))
    assert refused.status_code == 422 and "does not order disclosure" in refused.json()["detail"]
    # A share on the disclosing order, of what it covers, is made.
    made = _share(dsl, _body(family, family["photo"], basis="court_order", basis_id=order))
    assert made.status_code == 201, made.text
    assert _granted(family["agency"], family["photo"])


def test_the_recipient_reads_what_is_shared_until_the_consent_is_withdrawn(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs, medical = family["agency"], family["obs"], family["medical"]
    assert not _granted(agency, obs)  # a consent alone releases nothing
    made = ok(_share(family["dsl"], _body(family, obs)))
    assert made["state"] == "active" and made["child_id"] == family["child"]
    assert [(i["record_id"], i["version"]) for i in made["items"]] == [(obs.record_id, 1)]
    default_end = datetime.fromisoformat(made["valid_to"]) - datetime.fromisoformat(
        made["created_at"]
    )
    assert default_end == timedelta(days=14)
    assert _granted(agency, obs)
    assert not _granted(agency, medical)  # covered by the consent, but not shared
    with family["guardian"].client() as http:
        ok(http.post(f"/v1/consents/{family['consent']}/withdraw", json={"reason": "no"}))
    _, results = release(agency, [(obs.record_id, obs.version)])
    assert results[(obs.record_id, obs.version)] == {
        "record_id": obs.record_id,
        "version": obs.version,
        "status": "denied",
        "code": "unavailable",
    }
    outcome, detail = last_audit_entry(
        service_db, principal_id=agency.principal_id, action="keys.release"
    )
    assert outcome == "deny" and detail["items"] == [[obs.record_id, 1, "denied", "none"]]


def test_a_revoked_share_stops_the_next_release_and_only_its_lead_revokes(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    made = ok(_share(family["dsl"], _body(family, obs)))
    assert _granted(agency, obs)
    path = f"/v1/shares/{made['share_id']}/revoke"
    for device in (family["educator"], agency):
        with device.client() as http:
            assert http.post(path, json={"reason": "done"}).status_code == 404
    with family["dsl"].client() as http:
        assert http.post(path, json={}).status_code == 422
        revoked = ok(http.post(path, json={"reason": "sent by mistake"}))
    assert revoked["state"] == "revoked" and revoked["revoke_reason"] == "sent by mistake"
    assert not _granted(agency, obs)


def test_a_share_is_frozen_to_the_versions_current_when_it_was_made(
    family: dict[str, Any],
) -> None:
    agency, obs = family["agency"], family["obs"]
    ok(_share(family["dsl"], _body(family, obs)))
    amended = put_record(family["dsl"], child_ids=[family["child"]], amend=obs.record_id)
    assert amended.version == 2
    _, results = release(agency, [(obs.record_id, 1), (obs.record_id, 2)])
    assert results[(obs.record_id, 1)]["status"] == "granted"
    assert results[(obs.record_id, 2)]["status"] == "denied"


def test_shares_are_seen_by_their_creator_and_recipient_only(
    service: KeyService, admin: Device, family: dict[str, Any]
) -> None:
    made = ok(_share(family["dsl"], _body(family, family["obs"])))
    for device in (family["dsl"], family["agency"]):
        with device.client() as http:
            assert ok(http.get(f"/v1/shares/{made['share_id']}"))["share_id"] == made["share_id"]
            assert made["share_id"] in [s["share_id"] for s in ok(http.get("/v1/shares"))]
    stranger = admin_enrols(service, admin, kind="external", organisation="Other")
    with stranger.client() as http:
        theirs = http.get(f"/v1/shares/{made['share_id']}")
        unknown = http.get(f"/v1/shares/{UNKNOWN}")
        assert ok(http.get("/v1/shares")) == []
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()


def test_a_share_enters_the_disclosure_log_and_so_do_its_releases(
    family: dict[str, Any],
) -> None:
    obs = family["obs"]
    made = ok(_share(family["dsl"], _body(family, obs)))
    assert _granted(family["agency"], obs)
    with family["guardian"].client() as http:
        log = ok(http.get(f"/v1/children/{family['child']}/disclosures"))
    mine = [row for row in log if row["principal_id"] == family["agency"].principal_id]
    assert [(row["decision"], row["share_id"], row["basis"]) for row in mine] == [
        ("shared", made["share_id"], "consent"),
        ("granted", made["share_id"], "consent"),
    ]


def test_release_ends_at_the_exact_instant_the_share_expires(
    family: dict[str, Any], service_db: Engine
) -> None:
    """The service has no fixed clock, so the catalog's release decision (which takes ``now``)
    is asked on the service's database at the instants around the share's end."""
    obs, agency = family["obs"], family["agency"]
    made = ok(_share(family["dsl"], _body(family, obs)))
    end = datetime.fromisoformat(made["valid_to"])
    caller = Caller(
        principal_id=agency.principal_id,
        kind="external",
        roles=frozenset(),
        device_id=agency.device_id,
        display_name="Agency",
        organisation="County",
        receiving_key=b"\0" * 32,
        nonce="n",
    )

    def allowed(now: datetime) -> bool:
        with service_db.connect() as db:
            rows = db.execute(
                text(
                    "SELECT record_id, category, withheld_from_guardians FROM records "
                    "WHERE record_id = :r"
                ),
                {"r": obs.record_id},
            ).all()
            decisions = decide_row_reads(
                db, caller, rows, {obs.record_id: [family["child"]]}, now=now
            )
        return decisions[obs.record_id].allowed

    assert allowed(end - timedelta(microseconds=1))
    assert not allowed(end)


CAP = 3


def _used(engine: Engine, share_id: str) -> int:
    with engine.connect() as connection:
        used: int = connection.execute(
            text("SELECT used FROM share_items WHERE share_id = :s"), {"s": share_id}
        ).scalar_one()
    return used


def test_a_retry_by_the_same_device_is_not_counted_and_a_spent_cap_refuses(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    made = ok(_share(family["dsl"], _body(family, obs, download_cap=1)))
    assert _granted(agency, obs)
    assert _granted(agency, obs)  # a retry within the grace window
    assert _used(service_db, made["share_id"]) == 1
    second = enrol(service.base_url, own_code(agency))
    assert not _granted(second, obs)
    assert _used(service_db, made["share_id"]) == 1
    with family["dsl"].client() as http:
        shown = ok(http.get(f"/v1/shares/{made['share_id']}"))
    assert shown["items"][0]["remaining"] == 0


def _opened(engine: Engine, share_id: str) -> bool:
    with engine.connect() as connection:
        opened = connection.execute(
            text("SELECT opened_at FROM shares WHERE share_id = :s"), {"s": share_id}
        ).scalar_one()
    return opened is not None


def test_a_release_through_one_of_two_shares_of_a_version_is_attributed_to_it_alone(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    first = ok(_share(family["dsl"], _body(family, obs, download_cap=2)))["share_id"]
    second = ok(_share(family["dsl"], _body(family, obs, download_cap=2)))["share_id"]
    # Through the share made last, whichever the service would have picked by itself.
    with agency.client() as http:
        answer = ok(
            http.post(
                "/v1/keys/release",
                json={
                    "items": [{"record_id": obs.record_id, "version": obs.version}],
                    "share_id": second,
                },
            )
        )
    assert [r["status"] for r in answer["results"]] == ["granted"]

    outcome, detail = last_audit_entry(
        service_db, principal_id=agency.principal_id, action="keys.release"
    )
    assert (outcome, detail["items"]) == (
        "allow",
        [[obs.record_id, obs.version, "granted", "consent", second]],
    )
    with family["guardian"].client() as http:
        log = ok(http.get(f"/v1/children/{family['child']}/disclosures"))
    granted = [row for row in log if row["decision"] == "granted"]
    assert [(row["share_id"], row["record_id"]) for row in granted] == [(second, obs.record_id)]
    assert (_used(service_db, second), _opened(service_db, second)) == (1, True)
    assert (_used(service_db, first), _opened(service_db, first)) == (0, False)


def test_a_release_through_a_share_that_does_not_list_the_version_is_denied(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs, medical = family["agency"], family["obs"], family["medical"]
    listing_obs = ok(_share(family["dsl"], _body(family, obs, download_cap=2)))["share_id"]
    listing_medical = ok(_share(family["dsl"], _body(family, medical)))["share_id"]
    with agency.client() as http:
        answer = ok(
            http.post(
                "/v1/keys/release",
                json={
                    "items": [{"record_id": obs.record_id, "version": obs.version}],
                    "share_id": listing_medical,
                },
            )
        )
    assert [r["status"] for r in answer["results"]] == ["denied"]
    assert (_used(service_db, listing_obs), _opened(service_db, listing_obs)) == (0, False)
    assert not _opened(service_db, listing_medical)


def test_twenty_concurrent_releases_of_a_capped_record_give_exactly_the_cap(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    made = ok(_share(family["dsl"], _body(family, obs, download_cap=CAP)))
    devices = [agency, *(enrol(service.base_url, own_code(agency)) for _ in range(19))]
    start = threading.Barrier(len(devices))

    def download(device: Device) -> bool:
        start.wait()
        return _granted(device, obs)

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        outcomes = list(pool.map(download, devices))
    print(f"race: {outcomes.count(True)} of {len(devices)} granted, cap {CAP}")
    assert outcomes.count(True) == CAP
    assert _used(service_db, made["share_id"]) == CAP


def test_a_group_record_is_not_shared_on_the_consent_of_one_child_only(
    admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    dsl = family["dsl"]
    second = create_child(admin)
    assign(admin, staff_id=dsl.principal_id, child_id=second, role="dsl")
    group = put_record(dsl, child_ids=[family["child"], second])
    refused = _share(dsl, _body(family, group))
    assert refused.status_code == 422, refused.text
    assert "belongs to 2 children" in refused.json()["detail"]
    assert _count_shares(service_db, family["agency"].principal_id) == 0


def test_a_share_ending_in_seconds_releases_until_then_and_refuses_after(
    family: dict[str, Any],
) -> None:
    """Through the real service's wall clock: just before and just after the end."""
    obs, agency = family["obs"], family["agency"]
    end = datetime.now(UTC) + timedelta(seconds=3)
    made = ok(_share(family["dsl"], _body(family, obs, valid_to=end.isoformat())))
    assert datetime.fromisoformat(made["valid_to"]) == end
    assert _granted(agency, obs)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.2)
    assert not _granted(agency, obs)
    with agency.client() as http:
        assert ok(http.get(f"/v1/shares/{made['share_id']}"))["state"] == "expired"


# --- opening a share: the share and its first release in one signed request -----------------


def _open(device: Device, share_id: str, **body: Any) -> httpx.Response:
    with device.client() as http:
        return http.post(f"/v1/shares/{share_id}/open", json=body)


def _release_entries(engine: Engine, principal_id: str) -> int:
    with engine.connect() as connection:
        count: int = connection.execute(
            text(
                "SELECT count(*) FROM audit_entries WHERE actor_principal = :p "
                "AND action = 'keys.release'"
            ),
            {"p": principal_id},
        ).scalar_one()
    return count


def _opened_keys(device: Device, response: httpx.Response) -> dict[str, bytes]:
    """The record keys an opening released, unsealed by ``device``, by record id."""
    release = response.json()["release"]
    opener = BatchOpener(
        recipient_private=device.receiving_key,
        ephemeral_public=unb64(release["ephemeral_public"]),
        context=sealing_context(device.device_id, request_nonce(response.request)),
    )
    keys = {}
    for item in release["results"]:
        raw = item["attributes"]
        attributes = RecordAttributes.from_hex(
            record_id=raw["record_id"],
            version=raw["version"],
            child_ids=raw["child_ids"],
            category=raw["category"],
        )
        keys[item["record_id"]] = opener.open(unb64(item["sealed_key"]), aad=attributes.canonical())
    return keys


def test_opening_a_share_releases_its_first_items_through_it_as_a_release_does(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs, medical = family["agency"], family["obs"], family["medical"]
    made = ok(_share(family["dsl"], _body(family, obs, medical, download_cap=2)))
    share_id = made["share_id"]
    order = [item["record_id"] for item in made["items"]]

    opened = _open(agency, share_id)
    answer = ok(opened)

    # The share as it stood before this release (neither opened nor counted yet).
    assert answer["share"]["share_id"] == share_id and answer["share"]["status"] == "sent"
    results = answer["release"]["results"]
    assert [(r["record_id"], r["status"]) for r in results] == [(rid, "granted") for rid in order]
    assert all(r["download_url"] and r["ciphertext_size"] for r in results)
    records = {obs.record_id: obs, medical.record_id: medical}
    assert _opened_keys(agency, opened) == {rid: records[rid].record_key for rid in order}
    # Audited, logged, counted and opened exactly as a release through the share is.
    outcome, detail = last_audit_entry(
        service_db, principal_id=agency.principal_id, action="keys.release"
    )
    assert (outcome, detail["items"]) == (
        "allow",
        [[rid, 1, "granted", "consent", share_id] for rid in order],
    )
    with family["guardian"].client() as http:
        log = ok(http.get(f"/v1/children/{family['child']}/disclosures"))
    granted = [row for row in log if row["decision"] == "granted"]
    assert sorted((row["share_id"], row["record_id"]) for row in granted) == sorted(
        (share_id, rid) for rid in order
    )
    assert _opened(service_db, share_id)
    with service_db.connect() as connection:
        used = connection.execute(
            text("SELECT used FROM share_items WHERE share_id = :s"), {"s": share_id}
        ).scalars()
        assert list(used) == [1, 1]

    # Items the device holds are not released again; a budget of 0 bytes is one item.
    again = ok(_open(agency, share_id, held=[{"record_id": order[0], "version": 1}]))
    assert [r["record_id"] for r in again["release"]["results"]] == order[1:]
    one = ok(_open(agency, share_id, first_bytes=0))
    assert [r["record_id"] for r in one["release"]["results"]] == order[:1]
    everything = [{"record_id": rid, "version": 1} for rid in order]
    assert ok(_open(agency, share_id, held=everything))["release"] is None


def test_anyone_but_the_recipient_opening_gets_the_404_of_an_unknown_share_audited(
    service: KeyService, admin: Device, family: dict[str, Any], service_db: Engine
) -> None:
    obs = family["obs"]
    share_id = ok(_share(family["dsl"], _body(family, obs)))["share_id"]
    stranger = admin_enrols(service, admin, kind="external", organisation="Elsewhere")
    unknown = _open(family["agency"], UNKNOWN)
    assert unknown.status_code == 404
    for device in (stranger, family["educator"], family["dsl"], family["guardian"]):
        before = _release_entries(service_db, device.principal_id)
        refused = _open(device, share_id)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == unknown.json()["detail"]
        assert "sealed_key" not in refused.text
        outcome, detail = last_audit_entry(
            service_db, principal_id=device.principal_id, action="share.read"
        )
        assert (outcome, detail) == (
            "deny",
            {"share_id": share_id, "reason": "unknown", "status": 404},
        )
        assert _release_entries(service_db, device.principal_id) == before
    assert (_used(service_db, share_id), _opened(service_db, share_id)) == (0, False)


def test_a_revoked_or_expired_share_opens_to_its_state_and_releases_nothing(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    revoked = ok(_share(family["dsl"], _body(family, obs)))["share_id"]
    with family["dsl"].client() as http:
        ok(http.post(f"/v1/shares/{revoked}/revoke", json={"reason": "sent by mistake"}))
    end = datetime.now(UTC) + timedelta(seconds=2)
    expiring = ok(_share(family["dsl"], _body(family, obs, valid_to=end.isoformat())))
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.2)

    for share_id, state in ((revoked, "revoked"), (expiring["share_id"], "expired")):
        answer = ok(_open(agency, share_id))
        assert (answer["share"]["state"], answer["release"]) == (state, None)
        assert (_used(service_db, share_id), _opened(service_db, share_id)) == (0, False)
    assert _release_entries(service_db, agency.principal_id) == 0


def test_opening_after_the_consent_is_withdrawn_or_the_cap_is_spent_denies_as_a_release_does(
    service: KeyService, family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    share_id = ok(_share(family["dsl"], _body(family, obs, download_cap=1)))["share_id"]
    assert _granted(agency, obs)
    second = enrol(service.base_url, own_code(agency))
    denied = {"record_id": obs.record_id, "version": 1, "status": "denied", "code": "unavailable"}

    spent = ok(_open(second, share_id))
    assert spent["release"]["results"] == [denied]
    outcome, detail = last_audit_entry(
        service_db, principal_id=agency.principal_id, action="keys.release"
    )
    assert (outcome, detail["items"]) == ("deny", [[obs.record_id, 1, "denied", "none"]])
    assert _used(service_db, share_id) == 1

    with family["guardian"].client() as http:
        ok(http.post(f"/v1/consents/{family['consent']}/withdraw", json={"reason": "no"}))
    withdrawn = ok(_open(agency, share_id))
    # The share itself is still active: its basis is judged by the release, which denies.
    assert withdrawn["share"]["state"] == "active"
    assert withdrawn["release"]["results"] == [denied]
    outcome, detail = last_audit_entry(
        service_db, principal_id=agency.principal_id, action="keys.release"
    )
    assert (outcome, detail["items"]) == ("deny", [[obs.record_id, 1, "denied", "none"]])


def test_a_replayed_opening_is_refused_and_releases_nothing_more(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    share_id = ok(_share(family["dsl"], _body(family, obs, download_cap=1)))["share_id"]
    first = _open(agency, share_id)
    assert ok(first)["release"]["results"][0]["status"] == "granted"
    with httpx.Client(timeout=30.0) as plain:
        replay = plain.send(first.request)
    assert replay.status_code == 401, replay.text
    assert "sealed_key" not in replay.text
    assert _release_entries(service_db, agency.principal_id) == 1


def test_an_opening_with_a_malformed_body_is_refused_with_nothing_released(
    family: dict[str, Any], service_db: Engine
) -> None:
    agency, obs = family["agency"], family["obs"]
    share_id = ok(_share(family["dsl"], _body(family, obs)))["share_id"]
    for body in ({"first_bytes": -1}, {"held": [{"record_id": "x", "version": 1}]}, {"x": 1}):
        refused = _open(agency, share_id, **body)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert _release_entries(service_db, agency.principal_id) == 0
    assert (_used(service_db, share_id), _opened(service_db, share_id)) == (0, False)
