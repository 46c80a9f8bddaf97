"""A record's life against the real service: created for an assigned child, uploaded, committed
(only with the right digest), listed, released and downloaded (whole or a range), amended into
a new version, and deleted, which shreds its wrapped keys. Both databases."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.keyservice.helpers import (
    Room,
    commit,
    commit_claim,
    ok,
    pending_version,
    put_record,
    release,
    upload_whole,
)

pytestmark = pytest.mark.integration


def test_create_commit_list_and_release(room: Room) -> None:
    educator = room.educator
    stored = put_record(educator, child_ids=[room.child])
    with educator.client() as http:
        listed = ok(http.get(f"/v1/children/{room.child}/records"))
    assert [(r["record_id"], r["version"]) for r in listed] == [(stored.record_id, 1)]
    response, results = release(educator, [(stored.record_id, 1)], include_urls=True)
    granted = results[(stored.record_id, 1)]
    assert granted["status"] == "granted"
    assert educator.open_key(response, granted) == stored.record_key
    assert "record_key" not in response.text
    downloaded = httpx.get(granted["download_url"], timeout=30.0)
    assert downloaded.content == stored.ciphertext


def test_range_download(room: Room) -> None:
    educator = room.educator
    stored = put_record(educator, child_ids=[room.child], ciphertext=bytes(range(200)))
    _, results = release(educator, [(stored.record_id, 1)], include_urls=True)
    url = results[(stored.record_id, 1)]["download_url"]
    part = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=30.0)
    assert part.status_code == 206
    assert part.content == bytes(range(10, 20))


def test_amend_makes_a_new_version(room: Room) -> None:
    educator = room.educator
    first = put_record(educator, child_ids=[room.child])
    second = put_record(
        educator, child_ids=[room.child], amend=first.record_id, ciphertext=b"second version"
    )
    assert second.version == 2
    with educator.client() as http:
        history = ok(http.get(f"/v1/records/{first.record_id}/versions"))
        listed = ok(http.get(f"/v1/children/{room.child}/records"))
    assert [v["version"] for v in history] == [1, 2]
    assert [(r["record_id"], r["version"]) for r in listed] == [(first.record_id, 2)]


def test_commit_with_a_wrong_digest_is_refused_and_stays_invisible(room: Room) -> None:
    educator = room.educator
    created = pending_version(educator, child_ids=[room.child])
    upload_whole(created, b"abcd")
    refused = commit(educator, created, commit_claim(b"abce"))
    assert refused.status_code == 409
    with educator.client() as http:
        assert ok(http.get(f"/v1/children/{room.child}/records")) == []
    _, results = release(educator, [(created["record_id"], 1)])
    assert results[(created["record_id"], 1)] == {
        "record_id": created["record_id"],
        "version": 1,
        "status": "denied",
        "code": "unavailable",
    }


def test_staff_cannot_create_records_for_unassigned_children(room: Room) -> None:
    with room.educator.client() as http:
        refused = http.post(
            "/v1/records",
            json={
                "child_ids": [room.other_child],
                "category": "observation",
                "ciphertext_size": 4,
            },
        )
    assert refused.status_code == 403


def test_delete_shreds_the_wrapped_keys(room: Room, service_db: Engine) -> None:
    record = put_record(room.educator, child_ids=[room.child])
    with room.dsl.client() as http:
        ok(http.delete(f"/v1/records/{record.record_id}"))
    with service_db.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM wrapped_record_keys WHERE record_id = :r"),
            {"r": record.record_id},
        ).scalar_one()
    assert left == 0
    _, results = release(room.educator, [(record.record_id, 1)])
    assert results[(record.record_id, 1)]["status"] == "denied"
