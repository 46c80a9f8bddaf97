"""Random worlds built through the real key service's API, and compared on real releases
(decision 0028).

A world is made the way a nursery makes it: an admin creates the children and people and
proposes assignments, guardianships and room memberships that a second admin approves; a DSL of
the children adds records, records restricting and disclosing court orders (the disclosing
ones approved by the second admin) and makes shares; guardians record and withdraw their own
consents; some devices and people are revoked. What the service accepted becomes the model's
world (a change it refused is simply not part of it). Then every person asks for every record
in one release, and each member of staff tries to add a record; each answer is compared with
`tests.model.model.decide` at the moment of asking.

Windows are whole days away from the moment of asking, so a slow machine cannot move a
comparison across a boundary; the exact boundaries are the pure worlds' business.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    commit_claim,
    ok,
)
from tests.model import model
from tests.model.worlds import Query, describe
from tests.servers import KeyService

DAY = timedelta(days=1)
CATEGORIES = tuple(c for c in model.KNOWN_CATEGORIES)


@dataclass
class ApiWorld:
    world: model.World = field(default_factory=model.World)
    devices: dict[str, Device] = field(default_factory=dict)
    refused_changes: int = 0
    comparisons: int = 0
    mismatches: list[str] = field(default_factory=list)


@dataclass
class ApiResult:
    seed: int
    comparisons: int
    mismatches: list[str]
    refused_changes: int


_CLIENTS: dict[str, httpx.Client] = {}


@contextmanager
def _signed(device: Device) -> Iterator[httpx.Client]:
    """One signing client per device, kept: building an httpx client costs more than a request."""
    if device.device_id not in _CLIENTS:
        _CLIENTS[device.device_id] = device.client()
    yield _CLIENTS[device.device_id]


def approve(approver: Device, proposal_id: str) -> Any:
    with _signed(approver) as http:
        return ok(http.post(f"/v1/proposals/{proposal_id}/approve"))


def create_child(admin: Device, *, room: str) -> str:
    with _signed(admin) as http:
        return str(
            ok(http.post("/v1/admin/children", json={"display_name": "Child", "room": room}))[
                "child_id"
            ]
        )


def put_record(
    device: Device, *, child_ids: list[str], category: str, withheld_from_guardians: bool
) -> str:
    """Create, upload and commit a record (the bytes stand in for a real one); its id."""
    ciphertext = b"opaque ciphertext bytes"
    with _signed(device) as http:
        created = ok(
            http.post(
                "/v1/records",
                json={
                    "child_ids": child_ids,
                    "category": category,
                    "withheld_from_guardians": withheld_from_guardians,
                    "ciphertext_size": len(ciphertext),
                },
            )
        )
        upload = created["upload"]
        ok(http.put(upload["url"], content=ciphertext, auth=None))
        path = f"/v1/records/{created['record_id']}/versions/{created['version']}/commit"
        ok(http.post(path, json=commit_claim(ciphertext)))
    return str(created["record_id"])


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _window(rng: random.Random, now: datetime) -> model.Window:
    """Current (open or ending), not yet started, or ended: whole days from now."""
    shape = rng.choice(("current", "current_ending", "future", "ended"))
    if shape == "current":
        return model.Window(now - 2 * DAY, None)
    if shape == "current_ending":
        return model.Window(now - 2 * DAY, now + 20 * DAY)
    if shape == "future":
        return model.Window(now + 2 * DAY, now + 20 * DAY)
    return model.Window(now - 20 * DAY, now - 2 * DAY)


def _bounded(window: model.Window, now: datetime) -> model.Window:
    return window if window.end is not None else model.Window(window.start, now + 100 * DAY)


def _window_body(window: model.Window) -> dict[str, Any]:
    body: dict[str, Any] = {"valid_from": _iso(window.start)}
    if window.end is not None:
        body["valid_to"] = _iso(window.end)
    return body


def _proposed(admin: Device, approver: Device, path: str, body: dict[str, Any]) -> str | None:
    """Propose as ``admin``, approve as ``approver``: the result id, or None if refused."""
    with _signed(admin) as http:
        response = http.post(path, json=body)
    if response.status_code != 202:
        return None
    decided = approve(approver, response.json()["proposal_id"])
    return str(decided["result_id"]) if decided.get("result_id") else "approved"


@dataclass
class People:
    """The people every world reuses: each world has children of its own, so the relationships
    of one world never reach another's records. Someone a world revokes is made afresh."""

    lead: Device
    staff: list[tuple[Device, list[str]]]
    guardians: list[Device]
    outside: list[Device]


_PEOPLE: dict[str, People] = {}
STAFF_ROLES = (["educator"], ["manager"], ["dsl"], ["educator", "manager"])


def people(service: KeyService, admin: Device) -> People:
    if service.base_url not in _PEOPLE:
        _PEOPLE[service.base_url] = People(
            lead=admin_enrols(service, admin, kind="staff", roles=["dsl"], display_name="Lead"),
            staff=[
                (
                    admin_enrols(service, admin, kind="staff", roles=roles, display_name="Staff"),
                    roles,
                )
                for roles in STAFF_ROLES
            ],
            guardians=[
                admin_enrols(service, admin, kind="guardian", display_name="Guardian")
                for _ in range(3)
            ],
            outside=[
                admin_enrols(
                    service, admin, kind="external", organisation="County", display_name="Outside"
                )
                for _ in range(2)
            ],
        )
    return _PEOPLE[service.base_url]


def build(service: KeyService, admin: Device, approver: Device, seed: int) -> ApiWorld:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    built = ApiWorld()
    w = built.world
    pool = people(service, admin)
    # Who this world may revoke: made afresh, since a revocation cannot be undone.
    fresh = {kind: rng.random() < 0.08 for kind in ("staff", "guardian", "external")}

    def known(device: Device, kind: str, roles: list[str]) -> Device:
        model_kind = {"staff": "staff", "guardian": "guardian", "external": "outside"}[kind]
        w.people[device.principal_id] = model.Person(
            device.principal_id, model_kind, tuple(roles), True, False
        )
        built.devices[device.principal_id] = device
        return device

    def person(kind: str, roles: list[str], label: str, **extra: Any) -> Device:
        device = admin_enrols(service, admin, kind=kind, roles=roles, display_name=label, **extra)
        return known(device, kind, roles)

    w.children = [create_child(admin, room=f"world {seed}") for _ in range(rng.randint(1, 2))]
    # The children's DSL, who adds the records, records the orders and makes the shares.
    lead = known(pool.lead, "staff", ["dsl"])
    for child in w.children:
        window = model.Window(now - 3 * DAY, None)
        body = {
            "staff_id": lead.principal_id,
            "child_id": child,
            "role": "dsl",
            **_window_body(window),
        }
        made = _proposed(admin, approver, "/v1/admin/assignments", body)
        assert made is not None, "the lead's assignment was refused"
        w.assignments.append(model.Assignment(made, lead.principal_id, child, "dsl", window))

    staff = [known(device, "staff", roles) for device, roles in rng.sample(pool.staff, 2)]
    if fresh["staff"]:
        staff.append(person("staff", list(rng.choice(STAFF_ROLES)), "Staff"))
    for member in staff:
        for child in w.children:
            if rng.random() < 0.6:
                role = rng.choice(("educator", "manager", "dsl"))
                window = _window(rng, now)
                body = {
                    "staff_id": member.principal_id,
                    "child_id": child,
                    "role": role,
                    **_window_body(window),
                }
                made = _proposed(admin, approver, "/v1/admin/assignments", body)
                if made is None:
                    built.refused_changes += 1
                    continue
                w.assignments.append(
                    model.Assignment(made, member.principal_id, child, role, window)
                )

    if rng.random() < 0.5:
        _rooms(built, admin, approver, rng, now, seed, staff)

    guardians = [known(device, "guardian", []) for device in rng.sample(pool.guardians, 2)]
    if fresh["guardian"]:
        guardians.append(person("guardian", [], "Guardian"))
    for guardian in guardians:
        for child in w.children:
            if rng.random() < 0.6:
                pr = rng.random() < 0.75
                body = {
                    "guardian_id": guardian.principal_id,
                    "child_id": child,
                    "parental_responsibility": pr,
                }
                made = _proposed(admin, approver, "/v1/admin/guardianships", body)
                if made is None:
                    built.refused_changes += 1
                    continue
                w.guardianships.append(model.Guardianship(made, guardian.principal_id, child, pr))
    outside = [known(device, "external", []) for device in pool.outside]
    if fresh["external"]:
        outside.append(person("external", [], "Outside", organisation="County"))

    with _signed(lead) as http:
        for i in range(rng.randint(0, 2)):
            child, guardian = rng.choice(w.children), rng.choice(guardians)
            cats = tuple(sorted(rng.sample(CATEGORIES, rng.randint(0, 3))))
            window = _bounded(_window(rng, now), now)
            response = http.post(
                "/v1/court-orders",
                json={
                    "child_id": child,
                    "effect": "restrict_guardian",
                    "subject_id": guardian.principal_id,
                    "categories": list(cats),
                    "reference": f"restrict {seed}-{i}",
                    **_window_body(window),
                },
            )
            if response.status_code != 201:
                built.refused_changes += 1
                continue
            w.orders.append(
                model.CourtOrder(
                    response.json()["court_order_id"],
                    child,
                    "restrict",
                    guardian.principal_id,
                    cats,
                    window,
                )
            )
        for i in range(rng.randint(0, 2)):
            child, recipient = rng.choice(w.children), rng.choice(outside)
            cats = tuple(sorted(rng.sample(CATEGORIES, rng.randint(0, 4))))
            window = _bounded(_window(rng, now), now)
            response = http.post(
                "/v1/court-orders",
                json={
                    "child_id": child,
                    "effect": "disclose",
                    "subject_id": recipient.principal_id,
                    "categories": list(cats),
                    "reference": f"disclose {seed}-{i}",
                    **_window_body(window),
                },
            )
            if response.status_code != 202:
                built.refused_changes += 1
                continue
            decided = approve(approver, response.json()["proposal_id"])
            w.orders.append(
                model.CourtOrder(
                    str(decided["result_id"]),
                    child,
                    "disclose",
                    recipient.principal_id,
                    cats,
                    window,
                )
            )

    for _ in range(rng.randint(0, 3)):
        guardian, child, recipient = (
            rng.choice(guardians),
            rng.choice(w.children),
            rng.choice(outside),
        )
        cats = tuple(sorted(rng.sample(CATEGORIES, rng.randint(1, 4))))
        window = (
            model.Window(now - DAY, now + 200 * DAY)
            if rng.random() < 0.8
            else model.Window(now + 2 * DAY, now + 200 * DAY)
        )
        with _signed(built.devices[guardian.principal_id]) as http:
            response = http.post(
                "/v1/consents",
                json={
                    "child_id": child,
                    "given_by": guardian.principal_id,
                    "recipient_id": recipient.principal_id,
                    "categories": list(cats),
                    "purpose": f"model world {seed}",
                    **_window_body(window),
                },
            )
        if response.status_code != 201:
            built.refused_changes += 1
            continue
        w.consents.append(
            model.Consent(
                response.json()["consent_id"],
                child,
                guardian.principal_id,
                recipient.principal_id,
                cats,
                window,
                None,
            )
        )

    for _ in range(rng.randint(2, 4)):
        child_ids = sorted(rng.sample(w.children, rng.randint(1, len(w.children))))
        category = rng.choice(CATEGORIES)
        withheld = rng.random() < 0.15
        record_id = put_record(
            lead, child_ids=child_ids, category=category, withheld_from_guardians=withheld
        )
        w.records[record_id] = model.Record(record_id, tuple(child_ids), category, withheld)

    _shares(built, lead, rng, now, outside)
    _withdrawals_and_revocations(built, admin, rng, lead, set(built.devices) - _pooled(pool))
    return built


def _pooled(pool: People) -> set[str]:
    devices = [pool.lead, *(d for d, _ in pool.staff), *pool.guardians, *pool.outside]
    return {d.principal_id for d in devices}


def _rooms(
    built: ApiWorld,
    admin: Device,
    approver: Device,
    rng: random.Random,
    now: datetime,
    seed: int,
    staff: list[Device],
) -> None:
    w = built.world
    with _signed(admin) as http:
        room_id = ok(http.post("/v1/admin/rooms", json={"name": f"room {seed} {rng.random()}"}))[
            "room_id"
        ]
    for member in staff:
        if rng.random() < 0.6:
            role = rng.choice(("educator", "manager", "dsl"))
            window = _window(rng, now)
            body = {"staff_id": member.principal_id, "role": role, **_window_body(window)}
            if _room_join(admin, approver, f"/v1/admin/rooms/{room_id}/staff", body):
                w.room_staff.append(model.RoomStaff(member.principal_id, room_id, role, window))
            else:
                built.refused_changes += 1
    for child in w.children:
        if rng.random() < 0.6:
            window = _window(rng, now)
            body = {"child_id": child, **_window_body(window)}
            if _room_join(admin, approver, f"/v1/admin/rooms/{room_id}/children", body):
                w.room_children.append(model.RoomChild(child, room_id, window))
            else:
                built.refused_changes += 1


def _room_join(admin: Device, approver: Device, path: str, body: dict[str, Any]) -> bool:
    with _signed(admin) as http:
        response = http.post(path, json=body)
    if response.status_code == 202:
        approve(approver, response.json()["proposal_id"])
        return True
    return response.status_code == 200


def _shares(
    built: ApiWorld, lead: Device, rng: random.Random, now: datetime, outside: list[Device]
) -> None:
    w = built.world
    bases = [("consent", c.consent_id, c.recipient_id, c.child_id) for c in w.consents]
    bases += [
        ("court_order", o.order_id, o.subject_id, o.child_id)
        for o in w.orders
        if o.kind == "disclose"
    ]
    if not bases:
        return
    for _ in range(rng.randint(1, 3)):
        kind, basis_id, named, child = rng.choice(bases)
        recipient = named if rng.random() < 0.85 else rng.choice(outside).principal_id
        # Mostly records of the basis's child, as a lead would choose them.
        pool = [r for r, record in w.records.items() if record.child_ids == (child,)]
        if not pool or rng.random() < 0.2:
            pool = list(w.records)
        record_ids = sorted(rng.sample(pool, rng.randint(1, min(2, len(pool)))))
        expected = _share_allowed(w, lead, recipient, kind, basis_id, record_ids)
        with _signed(lead) as http:
            response = http.post(
                "/v1/shares",
                json={
                    "recipient_id": recipient,
                    "basis": kind,
                    "basis_id": basis_id,
                    "purpose": "model world",
                    "record_ids": record_ids,
                },
            )
        built.comparisons += 1
        if expected != (response.status_code == 201):
            built.mismatches.append(
                f"share of {record_ids} to {recipient} on {kind} {basis_id}: document says "
                f"{'made' if expected else 'refused'}, service answered {response.status_code} "
                f"{response.text[:200]}"
            )
        if response.status_code != 201:
            built.refused_changes += 1
            continue
        made = response.json()
        end = datetime.fromisoformat(made["valid_to"])
        w.shares.append(
            model.Share(
                made["share_id"],
                recipient,
                kind,
                basis_id,
                tuple(record_ids),
                model.Window(now - DAY, end),
                None,
                False,
            )
        )


def _share_allowed(
    w: model.World, lead: Device, recipient: str, kind: str, basis_id: str, record_ids: list[str]
) -> bool:
    """The document's answer to a new share: made only if the recipient could read every listed
    record through it now (on this basis alone) and its maker can read each of them."""
    now = datetime.now(UTC)
    trial = model.Share(
        "trial",
        recipient,
        kind,
        basis_id,
        tuple(record_ids),
        model.Window(now - DAY, now + DAY),
        None,
        False,
    )
    if w.people[recipient].kind != "outside":
        return False
    alone = model.World(**{**w.__dict__, "shares": [trial]})
    for record_id in record_ids:
        if not model.decide(
            alone, principal_id=recipient, action="read", record_id=record_id, now=now
        ).allowed:
            return False
        if not model.decide(
            w, principal_id=lead.principal_id, action="read", record_id=record_id, now=now
        ).allowed:
            return False
    return True


def _withdrawals_and_revocations(
    built: ApiWorld, admin: Device, rng: random.Random, lead: Device, revocable: set[str]
) -> None:
    w = built.world
    for i, consent in enumerate(w.consents):
        if rng.random() < 0.25:
            with _signed(built.devices[consent.guardian_id]) as http:
                ok(
                    http.post(
                        f"/v1/consents/{consent.consent_id}/withdraw", json={"reason": "model"}
                    )
                )
            w.consents[i] = model.Consent(**{**consent.__dict__, "withdrawn_at": datetime.now(UTC)})
    for i, share in enumerate(w.shares):
        if rng.random() < 0.2:
            with _signed(lead) as http:
                ok(http.post(f"/v1/shares/{share.share_id}/revoke", json={"reason": "model"}))
            w.shares[i] = model.Share(**{**share.__dict__, "revoked_at": datetime.now(UTC)})
    for principal_id in sorted(revocable):
        person = w.people[principal_id]
        draw = rng.random()
        if draw < 0.4:
            device = built.devices[principal_id]
            with _signed(admin) as http:
                ok(http.post(f"/v1/admin/devices/{device.device_id}/revoke"))
            w.people[principal_id] = model.Person(
                principal_id, person.kind, person.roles, True, True
            )
        elif draw < 0.8:
            with _signed(admin) as http:
                ok(http.post(f"/v1/admin/principals/{principal_id}/revoke"))
            w.people[principal_id] = model.Person(
                principal_id, person.kind, person.roles, False, True
            )


def _granted(device: Device, record_ids: list[str]) -> dict[str, bool]:
    with _signed(device) as http:
        response = http.post(
            "/v1/keys/release", json={"items": [{"record_id": r} for r in record_ids]}
        )
    if response.status_code == 401:
        # A revoked device or person is not even heard: every item is refused.
        return dict.fromkeys(record_ids, False)
    body = ok(response)
    return {item["record_id"]: item["status"] == "granted" for item in body["results"]}


def _may_add(device: Device, child_ids: list[str], category: str) -> bool:
    with _signed(device) as http:
        response = http.post(
            "/v1/records",
            json={"child_ids": child_ids, "category": category, "ciphertext_size": 4},
        )
    if response.is_success:
        return True
    assert response.status_code in (401, 403, 404, 422), f"{response.status_code}: {response.text}"
    return False


def compare(service: KeyService, admin: Device, approver: Device, seed: int) -> ApiResult:
    """Build world `seed` through the API and compare every release and one add per staff member."""
    built = build(service, admin, approver, seed)
    w = built.world
    rng = random.Random(seed ^ 0x5EED)
    mismatches = [f"api world seed {seed}: {m}" for m in built.mismatches]
    comparisons = built.comparisons
    record_ids = sorted(w.records)
    for principal_id, device in built.devices.items():
        granted = _granted(device, record_ids)
        asked_at = datetime.now(UTC)
        for record_id in record_ids:
            expected = model.decide(
                w, principal_id=principal_id, action="read", record_id=record_id, now=asked_at
            )
            comparisons += 1
            if expected.allowed != granted[record_id]:
                mismatches.append(
                    f"api world seed {seed}: {principal_id} read {record_id}: document says "
                    f"{expected.allowed} ({expected.why}), service said {granted[record_id]}"
                )
        if w.people[principal_id].kind != "staff":
            continue
        child_ids = sorted(rng.sample(w.children, rng.randint(1, len(w.children))))
        category = rng.choice(CATEGORIES)
        probe = model.Record("probe", tuple(child_ids), category, False)
        w.records["probe"] = probe
        expected = model.decide(
            w, principal_id=principal_id, action="add", record_id="probe", now=datetime.now(UTC)
        )
        del w.records["probe"]
        added = _may_add(device, child_ids, category)
        comparisons += 1
        if expected.allowed != added:
            mismatches.append(
                f"api world seed {seed}: {principal_id} add {category} of {child_ids}: "
                f"document says {expected.allowed} ({expected.why}), service said {added}"
            )
    if mismatches:
        mismatches.append(describe(w, Query("-", "-", "-", datetime.now(UTC))))
    return ApiResult(seed, comparisons, mismatches, built.refused_changes)
