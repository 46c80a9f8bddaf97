"""Shares through the SDK (issue 14): a DSL shares records with an outside recipient on a
guardian's consent, the recipient downloads the share whole with ``get_share``, and a rerun
fetches only what is missing or no longer matches. Against the real key service.

Negative tests first: a revoked share, a share revoked or a cap spent mid-way, another
recipient's share, a damaged file in the download directory. Then receipts (``ack_share``):
refused here when something was not received, refused by the service for a tampered digest or
a second time, and a share's status from sent to acknowledged; the overdue list.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.sdk.conftest import Forward, Office, relay
from vault.client import Client, Share, ShareDownload, wire
from vault.client import shares as shares_module
from vault.client.fields import MalformedAnswer
from vault.client.shares import manifest_path
from vault.errors import Conflict, KeyServiceRequestError, NotFound, NotReceived, ShareRefused

pytestmark = pytest.mark.integration

NOTE = b"Ada stacked six blocks today and counted them aloud.\n"
LETTER = b"Speech therapy referral: please assess expressive language.\n" * 40


@dataclass
class Family:
    """A child with a DSL, a guardian who consented to share observations and medical records
    with an agency, the agency's device, and two records of the child."""

    office: Office
    child: str
    dsl: Client
    guardian: Client
    agency: Client
    consent: str
    note: str
    letter: str

    def share(self, **extra: object) -> Share:
        return self.dsl.create_share(
            recipient_id=self.agency.identity.principal_id,
            basis="consent",
            basis_id=self.consent,
            purpose="referral to speech therapy",
            record_ids=[self.note, self.letter],
            **extra,  # type: ignore[arg-type]
        )


def _put(client: Client, child: str, category: str, name: str, data: bytes) -> str:
    ref = client.put(
        child_ids=[child],
        category=category,
        stream=io.BytesIO(data),
        file_name=name,
        content_type="text/plain",
    )
    return ref.record_id


@pytest.fixture
def family(office: Office) -> Iterator[Family]:
    dsl = office.enrol(roles=("dsl",))
    child = office.child_of(dsl, role="dsl")
    guardian = office.enrol(kind="guardian", roles=())
    office.add_guardian(guardian, child)
    agency = office.enrol(kind="external", roles=())
    consent = guardian.record_consent(
        child_id=child,
        given_by=guardian.identity.principal_id,
        recipient_id=agency.identity.principal_id,
        categories=["observation", "medical"],
        purpose="referral",
    )
    assert isinstance(consent, str)
    made = Family(
        office=office,
        child=child,
        dsl=dsl,
        guardian=guardian,
        agency=agency,
        consent=consent,
        note=_put(dsl, child, "observation", "note.txt", NOTE),
        letter=_put(dsl, child, "medical", "letter.txt", LETTER),
    )
    yield made
    for client in (dsl, guardian, agency):
        client.close()


@dataclass
class Seen:
    """A ``ShareProgress`` that keeps what it was told."""

    plans: list[tuple[int, int]] = field(default_factory=list)
    items: list[tuple[str, int, int]] = field(default_factory=list)
    received: int = 0

    def planned(self, *, fetch: int, skip: int) -> None:
        self.plans.append((fetch, skip))

    def fetching(self, *, record_id: str, version: int, size: int) -> None:
        self.items.append((record_id, version, size))

    def advance(self, count: int) -> None:
        self.received += count


def _files(directory: Path) -> dict[str, bytes]:
    """Every visible file of a directory (not the manifest) and its bytes."""
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in directory.iterdir() if not p.name.startswith(".")}


def _opened(request: httpx.Request, response: httpx.Response) -> list[str]:
    """The record ids an opening of a share released with it (granted or denied)."""
    if not (request.url.path.startswith("/v1/shares/") and request.url.path.endswith("/open")):
        return []
    response.read()
    release = response.json()["release"] if response.status_code == 200 else None
    return [] if release is None else [item["record_id"] for item in release["results"]]


def _releases(office: Office, client: Client) -> tuple[Client, list[str]]:
    """The same device as ``client``, through a relay that notes every record whose key it
    asks for."""
    asked: list[str] = []

    def note(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.url.path == "/v1/keys/release":
            asked.extend(item["record_id"] for item in json.loads(request.content)["items"])
        response = forward(request)
        asked.extend(_opened(request, response))
        return response

    return Client(client.identity, transport=relay(note)), asked


def test_a_revoked_share_is_refused_naming_an_item_and_nothing_is_written(
    family: Family, tmp_path: Path
) -> None:
    made = family.share()
    revoked = family.dsl.revoke_share(made.share_id, reason="sent to the wrong agency")
    assert (revoked.state, revoked.revoke_reason) == ("revoked", "sent to the wrong agency")
    out = tmp_path / "got"

    with pytest.raises(ShareRefused) as refused:
        family.agency.get_share(made.share_id, out_dir=out)

    assert refused.value.share_id == made.share_id
    assert refused.value.record_id in (family.note, family.letter)
    assert "the share is revoked" in str(refused.value)
    assert _files(out) == {}
    assert not manifest_path(out, made.share_id).exists()


def test_a_share_revoked_mid_way_keeps_what_was_received_and_names_the_refused_item(
    family: Family, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first release is of one item (as for a share too large for one), so the revocation
    # falls between the two releases.
    monkeypatch.setattr(shares_module, "FIRST_BATCH_BYTES", 0)
    made = family.share()
    first, second = made.items
    out = tmp_path / "got"

    class RevokeAfterFirst(Seen):
        def fetching(self, *, record_id: str, version: int, size: int) -> None:
            super().fetching(record_id=record_id, version=version, size=size)
            if len(self.items) == 1:
                family.dsl.revoke_share(made.share_id, reason="consent queried")

    with pytest.raises(ShareRefused) as refused:
        family.agency.get_share(made.share_id, out_dir=out, progress=RevokeAfterFirst())

    assert (refused.value.record_id, refused.value.version) == (second.record_id, 1)
    assert "the share is revoked" in str(refused.value)
    assert refused.value.kept == 1
    # The first item's key was released before the revocation: it is written and recorded.
    contents = {family.note: ("note.txt", NOTE), family.letter: ("letter.txt", LETTER)}
    assert _files(out) == dict([contents[first.record_id]])
    manifest = json.loads(manifest_path(out, made.share_id).read_text())
    assert [entry["record_id"] for entry in manifest["items"]] == [first.record_id]


def test_a_spent_cap_refuses_the_item_and_keeps_the_others(
    office: Office, family: Family, tmp_path: Path
) -> None:
    made = family.share(download_cap=1)
    assert all(item.remaining == 1 for item in made.items)
    first, last = made.items
    contents = {family.note: ("note.txt", NOTE), family.letter: ("letter.txt", LETTER)}
    # The recipient's other device spends the only download of the share's last record.
    code = family.agency.add_device_code()
    other, _identity = Client.enrol(office.base_url, code.code, "agency phone")
    with other:
        other.get(last.record_id, dst=tmp_path, version=1)
    out = tmp_path / "got"

    with pytest.raises(ShareRefused) as refused:
        family.agency.get_share(made.share_id, out_dir=out)

    assert (refused.value.record_id, refused.value.kept) == (last.record_id, 1)
    assert "download cap is spent" in str(refused.value)
    assert last.record_id in str(refused.value)
    assert _files(out) == dict([contents[first.record_id]])
    shown = family.dsl.share(made.share_id)
    assert {item.record_id: item.remaining for item in shown.items} == {
        family.note: 0,
        family.letter: 0,
    }


def test_another_recipients_share_is_not_found_and_nothing_is_written(
    office: Office, family: Family, tmp_path: Path
) -> None:
    made = family.share()
    stranger = office.enrol(kind="external", roles=())
    out = tmp_path / "got"
    with stranger:
        with pytest.raises(NotFound):
            stranger.get_share(made.share_id, out_dir=out)
        with pytest.raises(NotFound):
            stranger.share(made.share_id)
        assert stranger.shares() == []
    assert not out.exists()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(b"X" + path.read_bytes()[1:]), id="altered"),
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[:10]), id="partial"),
        pytest.param(lambda path: path.unlink(), id="missing"),
    ],
)
def test_a_damaged_file_is_fetched_again_on_a_rerun_and_only_it(
    office: Office, family: Family, tmp_path: Path, damage: object
) -> None:
    made = family.share()
    out = tmp_path / "got"
    family.agency.get_share(made.share_id, out_dir=out)
    damage(out / "letter.txt")  # type: ignore[operator]
    agency, asked = _releases(office, family.agency)

    with agency:
        again = agency.get_share(made.share_id, out_dir=out)

    assert [item.record_id for item in again.fetched] == [family.letter]
    assert [item.record_id for item in again.skipped] == [family.note]
    assert asked == [family.letter]
    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER}


def test_a_rerun_with_everything_verified_fetches_nothing_and_asks_for_no_key(
    office: Office, family: Family, tmp_path: Path
) -> None:
    made = family.share()
    out = tmp_path / "got"
    first = family.agency.get_share(made.share_id, out_dir=out)
    assert len(first.fetched) == 2 and first.skipped == ()
    agency, asked = _releases(office, family.agency)
    seen = Seen()

    with agency:
        again = agency.get_share(made.share_id, out_dir=out, progress=seen)

    assert again.fetched == ()
    assert sorted(item.record_id for item in again.skipped) == sorted([family.note, family.letter])
    assert asked == []
    assert seen.plans == [(0, 2)] and seen.items == []
    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER}


def test_a_recipient_downloads_a_share_whole_verified_with_its_manifest(
    family: Family, tmp_path: Path
) -> None:
    made = family.share(download_cap=2)
    assert made.state == "active" and made.active
    assert {(item.record_id, item.version) for item in made.items} == {
        (family.note, 1),
        (family.letter, 1),
    }
    # Both the creator and the recipient list it; nobody else.
    assert [s.share_id for s in family.dsl.shares()] == [made.share_id]
    assert [s.share_id for s in family.agency.shares()] == [made.share_id]
    # An amendment does not reach the recipient: the share keeps version 1.
    family.dsl.amend(family.note, stream=io.BytesIO(b"amended"), file_name="note.txt")
    out = tmp_path / "got"
    seen = Seen()

    got: ShareDownload = family.agency.get_share(made.share_id, out_dir=out, progress=seen)

    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER}
    assert got.skipped == () and got.directory == out
    assert seen.plans == [(2, 0)]
    assert [size for _, _, size in seen.items] and seen.received == sum(
        size for _, _, size in seen.items
    )
    by_id = {item.record_id: item for item in got.fetched}
    assert by_id[family.note].sha256 == hashlib.sha256(NOTE).hexdigest()
    assert (by_id[family.letter].size, by_id[family.letter].file_name) == (
        len(LETTER),
        "letter.txt",
    )
    manifest = json.loads(manifest_path(out, made.share_id).read_text())
    assert {(e["record_id"], e["version"], e["file"]) for e in manifest["items"]} == {
        (family.note, 1, "note.txt"),
        (family.letter, 1, "letter.txt"),
    }
    shown = family.agency.share(made.share_id)
    assert {item.record_id: (item.used, item.remaining) for item in shown.items} == {
        family.note: (1, 1),
        family.letter: (1, 1),
    }


def test_two_records_of_one_name_and_a_file_already_there_are_kept_apart(
    family: Family, tmp_path: Path
) -> None:
    again = _put(family.dsl, family.child, "observation", "note.txt", b"second note")
    made = family.dsl.create_share(
        recipient_id=family.agency.identity.principal_id,
        basis="consent",
        basis_id=family.consent,
        purpose="referral",
        categories=["observation"],
    )
    assert {item.record_id for item in made.items} == {family.note, again}
    out = tmp_path / "got"
    out.mkdir()
    (out / "note.txt").write_bytes(b"the recipient's own file")

    got = family.agency.get_share(made.share_id, out_dir=out)

    files = _files(out)
    assert files.pop("note.txt") == b"the recipient's own file"
    assert sorted(files.values()) == sorted([NOTE, b"second note"])
    assert {item.path.name for item in got.fetched} == set(files)


def _batches(office: Office, client: Client) -> tuple[Client, list[list[str]]]:
    """The same device as ``client``, through a relay that notes the record ids of every key
    release, one list per request."""
    asked: list[list[str]] = []

    def note(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.url.path == "/v1/keys/release":
            asked.append([item["record_id"] for item in json.loads(request.content)["items"]])
        response = forward(request)
        if released := _opened(request, response):
            asked.append(released)
        return response

    return Client(client.identity, transport=relay(note)), asked


def _three(family: Family, **extra: object) -> tuple[Share, list[str]]:
    """A share of the note, the letter and a third record, and its record ids in its order."""
    third = _put(family.dsl, family.child, "observation", "third.txt", b"a third note")
    made = family.dsl.create_share(
        recipient_id=family.agency.identity.principal_id,
        basis="consent",
        basis_id=family.consent,
        purpose="referral",
        record_ids=[family.note, family.letter, third],
        **extra,  # type: ignore[arg-type]
    )
    return made, [item.record_id for item in made.items]


def test_a_small_share_is_released_in_one_request_and_counted_once(
    office: Office, family: Family, tmp_path: Path
) -> None:
    made, order = _three(family, download_cap=1)
    assert all(item.ciphertext_size for item in made.items)
    agency, asked = _batches(office, family.agency)
    out = tmp_path / "got"

    with agency:
        got = agency.get_share(made.share_id, out_dir=out)

    assert asked == [order]
    assert [item.record_id for item in got.fetched] == order
    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER, "third.txt": b"a third note"}
    shown = family.dsl.share(made.share_id)
    assert {(item.used, item.remaining) for item in shown.items} == {(1, 0)}


def test_a_large_share_is_released_one_item_first_then_the_rest_in_one_batch_counted_once(
    office: Office, family: Family, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Larger than the first release may be: one item first, then as many as fit.
    monkeypatch.setattr(shares_module, "FIRST_BATCH_BYTES", 0)
    made, order = _three(family, download_cap=1)
    agency, asked = _batches(office, family.agency)
    out = tmp_path / "got"

    with agency:
        got = agency.get_share(made.share_id, out_dir=out)

    assert asked == [order[:1], order[1:]]
    assert [item.record_id for item in got.fetched] == order
    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER, "third.txt": b"a third note"}
    shown = family.dsl.share(made.share_id)
    assert {(item.used, item.remaining) for item in shown.items} == {(1, 0)}


def test_an_item_not_started_soon_after_its_release_is_asked_again_and_not_counted_again(
    office: Office, family: Family, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every item but a batch's first is past its freshness: each is asked for once more, and
    # the cap of one download is not spent twice (the grace window).
    monkeypatch.setattr(shares_module, "FRESH_S", 0.0)
    monkeypatch.setattr(shares_module, "FIRST_BATCH_BYTES", 0)
    made, order = _three(family, download_cap=1)
    agency, asked = _batches(office, family.agency)
    out = tmp_path / "got"

    with agency:
        got = agency.get_share(made.share_id, out_dir=out)

    assert asked == [order[:1], order[1:], order[2:]]
    assert [item.record_id for item in got.fetched] == order
    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER, "third.txt": b"a third note"}
    shown = family.dsl.share(made.share_id)
    assert {(item.used, item.remaining) for item in shown.items} == {(1, 0)}


def test_an_item_refused_inside_a_batch_is_named_after_the_others_released_are_kept(
    office: Office, family: Family, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shares_module, "FIRST_BATCH_BYTES", 0)
    made, order = _three(family, download_cap=1)
    code = family.agency.add_device_code()
    other, _identity = Client.enrol(office.base_url, code.code, "agency phone")
    with other:
        other.get(order[1], dst=tmp_path, version=1)
    agency, asked = _batches(office, family.agency)
    out = tmp_path / "got"

    with agency, pytest.raises(ShareRefused) as refused:
        agency.get_share(made.share_id, out_dir=out)

    assert asked == [order[:1], order[1:]]
    assert (refused.value.record_id, refused.value.kept) == (order[1], 2)
    assert "download cap is spent" in str(refused.value)
    manifest = json.loads(manifest_path(out, made.share_id).read_text())
    assert [entry["record_id"] for entry in manifest["items"]] == [order[0], order[2]]
    # A rerun asks only for the refused item, and is refused again.
    with pytest.raises(ShareRefused) as again:
        family.agency.get_share(made.share_id, out_dir=out)
    assert (again.value.record_id, again.value.kept) == (order[1], 2)


def test_a_share_answer_with_fields_this_client_does_not_know_still_parses() -> None:
    body = {
        "share_id": "a" * 32,
        "recipient_id": "b" * 32,
        "basis": "consent",
        "basis_id": "c" * 32,
        "child_id": "d" * 32,
        "purpose": "referral",
        "created_by": "e" * 32,
        "created_at": "2026-11-22T18:00:00Z",
        "valid_from": "2026-11-22T18:00:00Z",
        "valid_to": "2026-12-06T18:00:00Z",
        "download_cap": None,
        "state": "active",
        "items": [{"record_id": "f" * 32, "version": 2, "used": 0, "remaining": None}],
        "status": "opened",
        "invitation": {"code": "K7Q2-ABCD", "expires_at": "2026-11-29T18:00:00Z"},
        "ack_due": "2026-11-25T18:00:00Z",
        "overdue": False,
    }

    parsed = wire.share(body)

    assert parsed.status == "opened"
    assert parsed.invitation is not None and parsed.invitation.code == "K7Q2-ABCD"
    assert "K7Q2" not in repr(parsed)
    assert parsed.items[0].remaining is None and parsed.revoked_at is None
    older = wire.share({k: v for k, v in body.items() if k not in ("status", "invitation")})
    assert (older.status, older.invitation) == (None, None)


# --- receipts: ack_share, status, overdue -------------------------------------------------


def _requests(office: Office, client: Client) -> tuple[Client, list[tuple[str, str]]]:
    """The same device as ``client``, through a relay that notes every request's method and
    path."""
    seen: list[tuple[str, str]] = []

    def note(request: httpx.Request, forward: Forward) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return forward(request)

    return Client(client.identity, transport=relay(note)), seen


def _acks(seen: list[tuple[str, str]]) -> list[str]:
    return [path for method, path in seen if method == "POST" and path.endswith("/ack")]


def test_an_ack_before_anything_is_received_is_refused_here_and_nothing_is_sent(
    office: Office, family: Family, tmp_path: Path
) -> None:
    made = family.share()
    agency, seen = _requests(office, family.agency)

    with agency, pytest.raises(NotReceived) as refused:
        agency.ack_share(made.share_id, out_dir=tmp_path / "nothing-here")

    assert set(refused.value.missing) == {(family.note, 1), (family.letter, 1)}
    assert made.share_id in str(refused.value) and "nothing was sent" in str(refused.value)
    assert _acks(seen) == []
    assert family.dsl.share(made.share_id).status == "sent"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(b"X" + path.read_bytes()[1:]), id="altered"),
        pytest.param(lambda path: path.unlink(), id="missing"),
    ],
)
def test_an_ack_with_a_file_gone_or_changed_since_it_was_received_is_refused_naming_it(
    office: Office, family: Family, tmp_path: Path, damage: object
) -> None:
    made = family.share()
    out = tmp_path / "got"
    family.agency.get_share(made.share_id, out_dir=out)
    damage(out / "letter.txt")  # type: ignore[operator]
    agency, seen = _requests(office, family.agency)

    with agency, pytest.raises(NotReceived) as refused:
        agency.ack_share(made.share_id, out_dir=out)

    assert refused.value.missing == ((family.letter, 1),)
    assert family.letter in str(refused.value) and family.note not in str(refused.value)
    assert _acks(seen) == []
    shown = family.dsl.share(made.share_id)
    assert (shown.status, shown.acknowledged_at) == ("opened", None)


def test_an_ack_with_a_tampered_manifest_digest_is_refused_by_the_service(
    family: Family, tmp_path: Path
) -> None:
    made = family.share()
    out = tmp_path / "got"
    family.agency.get_share(made.share_id, out_dir=out)
    path = manifest_path(out, made.share_id)
    manifest = json.loads(path.read_text())
    tampered = next(e for e in manifest["items"] if e["record_id"] == family.letter)
    tampered["ciphertext_sha256"] = hashlib.sha256(b"other bytes").hexdigest()
    path.write_text(json.dumps(manifest))

    with pytest.raises(KeyServiceRequestError) as refused:
        family.agency.ack_share(made.share_id, out_dir=out)

    assert refused.value.status == 422
    assert "digest differs" in str(refused.value) and family.letter in str(refused.value)
    shown = family.dsl.share(made.share_id)
    assert (shown.status, shown.acknowledged_at, shown.acknowledged_device) == (
        "opened",
        None,
        None,
    )


def test_a_second_ack_is_a_conflict_and_the_first_stands(
    office: Office, family: Family, tmp_path: Path
) -> None:
    made = family.share()
    out = tmp_path / "got"
    family.agency.get_share(made.share_id, out_dir=out)
    first = family.agency.ack_share(made.share_id, out_dir=out)

    with pytest.raises(Conflict) as refused:
        family.agency.ack_share(made.share_id, out_dir=out)

    assert refused.value.status == 409 and "acknowledged already" in str(refused.value)
    assert family.dsl.share(made.share_id).acknowledged_at == first.acknowledged_at


def test_a_manifest_without_ciphertext_digests_is_fetched_again_then_acknowledged(
    office: Office, family: Family, tmp_path: Path
) -> None:
    """A directory an SDK wrote before receipts: its manifest has no ciphertext digests."""
    made = family.share()
    out = tmp_path / "got"
    family.agency.get_share(made.share_id, out_dir=out)
    path = manifest_path(out, made.share_id)
    manifest = json.loads(path.read_text())
    for entry in manifest["items"]:
        del entry["ciphertext_sha256"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(NotReceived) as refused:
        family.agency.ack_share(made.share_id, out_dir=out)
    assert set(refused.value.missing) == {(family.note, 1), (family.letter, 1)}
    agency, asked = _releases(office, family.agency)

    with agency:
        again = agency.get_share(made.share_id, out_dir=out)
        acked = agency.ack_share(made.share_id, out_dir=out)

    assert sorted(asked) == sorted([family.note, family.letter])
    assert len(again.fetched) == 2 and again.skipped == ()
    assert all(item.ciphertext_sha256 for item in again.fetched)
    assert acked.status == "acknowledged"
    assert _files(out) == {"note.txt": NOTE, "letter.txt": LETTER}


def test_status_moves_from_sent_to_opened_to_acknowledged_for_creator_and_recipient(
    family: Family, tmp_path: Path
) -> None:
    due = datetime.now(UTC) + timedelta(days=2)
    made = family.share(ack_due=due)
    assert (made.status, made.opened_at, made.acknowledged_at) == ("sent", None, None)
    assert (made.ack_due, made.overdue) == (due, False)
    out = tmp_path / "got"

    got = family.agency.get_share(made.share_id, out_dir=out)
    opened = family.dsl.share(made.share_id)
    assert opened.status == "opened" and opened.opened_at is not None
    assert all(item.ciphertext_sha256 for item in got.fetched)
    manifest = json.loads(manifest_path(out, made.share_id).read_text())
    assert all(len(entry["ciphertext_sha256"]) == 64 for entry in manifest["items"])

    acked = family.agency.ack_share(made.share_id, out_dir=out)

    assert acked.status == "acknowledged" and acked.acknowledged_at is not None
    assert acked.acknowledged_device == family.agency.identity.device_id
    seen = family.dsl.share(made.share_id)
    assert (seen.status, seen.acknowledged_at, seen.opened_at) == (
        "acknowledged",
        acked.acknowledged_at,
        opened.opened_at,
    )
    assert seen.overdue is False


def test_overdue_lists_a_share_past_its_deadline_and_not_an_acknowledged_one(
    family: Family, tmp_path: Path
) -> None:
    """Through the real service's wall clock: deadlines a couple of seconds away."""
    due = datetime.now(UTC) + timedelta(seconds=3)

    def share_of(record_id: str) -> Share:
        return family.dsl.create_share(
            recipient_id=family.agency.identity.principal_id,
            basis="consent",
            basis_id=family.consent,
            purpose="transfer",
            record_ids=[record_id],
            ack_due=due,
        )

    # Apart: releasing a record opens every live share of it to that recipient.
    late, done = share_of(family.note), share_of(family.letter)
    out = tmp_path / "got"
    family.agency.get_share(done.share_id, out_dir=out)
    family.agency.ack_share(done.share_id, out_dir=out)
    assert family.dsl.overdue_shares() == []

    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.2)

    listed = family.dsl.overdue_shares()
    assert [s.share_id for s in listed] == [late.share_id]
    assert listed[0].overdue is True and listed[0].status == "sent"
    assert family.dsl.share(done.share_id).overdue is False
    assert family.agency.overdue_shares() == []


def test_a_share_answer_with_receipt_fields_parses_them() -> None:
    body = {
        "share_id": "a" * 32,
        "recipient_id": "b" * 32,
        "basis": "court_order",
        "basis_id": "c" * 32,
        "child_id": "d" * 32,
        "purpose": "transfer",
        "created_by": "e" * 32,
        "created_at": "2026-11-22T18:00:00Z",
        "valid_from": "2026-11-22T18:00:00Z",
        "valid_to": "2026-12-06T18:00:00Z",
        "download_cap": 2,
        "state": "expired",
        "items": [{"record_id": "f" * 32, "version": 1, "used": 1, "remaining": 1}],
        "status": "acknowledged",
        "opened_at": "2026-11-23T09:00:00Z",
        "acknowledged_at": "2026-11-23T09:05:00Z",
        "acknowledged_device": "9" * 32,
        "ack_due": "2026-11-25T18:00:00Z",
        "overdue": False,
    }

    parsed = wire.share(body)

    assert parsed.opened_at == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert parsed.acknowledged_at == datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
    assert (parsed.acknowledged_device, parsed.overdue) == ("9" * 32, False)
    assert parsed.ack_due == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert wire.share({**body, "overdue": True}).overdue is True
    with pytest.raises(MalformedAnswer):
        wire.share({**body, "overdue": "yes"})
