"""The service's answers are parsed once, at the transport (vault/client/wire.py): an answer
that is not what docs/API.md promises is a ``KeyServiceError`` naming the request, never a
``KeyError`` or ``TypeError`` from deep inside the client."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.sdk.conftest import Forward, relay
from vault.client import Client, wire
from vault.client.fields import Fields, MalformedAnswer
from vault.client.models import MultipartUpload, SingleUpload
from vault.errors import KeyServiceError, UploadError
from vault.format import Category, CiphertextDigest

ID = "a" * 32
SHA256 = "A" * 43  # 32 zero bytes, base64url
PROPOSAL: dict[str, Any] = {
    "proposal_id": ID,
    "action": "assignment.create",
    "state": "pending",
    "child_id": ID,
    "beneficiary_id": ID,
    "payload": {"role": "educator"},
    "proposed_by": ID,
    "proposed_device": None,
    "proposed_at": "2026-11-22T18:00:00Z",
    "expires_at": "2026-12-06T18:00:00Z",
}
LISTED: dict[str, Any] = {
    "record_id": ID,
    "version": 2,
    "category": "photo",
    "child_ids": [ID],
    "withheld_from_guardians": False,
    "encrypted_metadata": "AAAA",
    "created_at": "2026-11-22T18:00:00Z",
    "created_by": ID,
}
ATTRIBUTES = {"record_id": ID, "version": 1, "child_ids": [ID], "category": "photo"}
GRANTED: dict[str, Any] = {
    "record_id": ID,
    "version": 1,
    "status": "granted",
    "attributes": ATTRIBUTES,
    "sealed_key": "AAAA",
    "ciphertext_size": 100,
    "ciphertext_digest_alg": "blake3",
    "ciphertext_digest": SHA256,
}


def _with(body: dict[str, Any], **changes: object) -> dict[str, Any]:
    return {**body, **changes}


def test_an_approved_import_of_new_staff_carries_their_codes() -> None:
    issued = {
        "line": 2,
        "principal_id": ID,
        "display_name": "Mo",
        "code": "ABCD-EFGH",
        "expires_at": "2026-11-23T18:00:00Z",
    }
    approved = wire.proposal(_with(PROPOSAL, enrolment_codes=[issued]))
    assert [(c.line, c.principal_id, c.code.code) for c in approved.enrolment_codes] == [
        (2, ID, "ABCD-EFGH")
    ]
    # Never in a repr (a log line): the code opens an account.
    assert "ABCD" not in repr(approved)
    assert wire.proposal(PROPOSAL).enrolment_codes == ()


def test_a_listed_version_is_typed() -> None:
    listed = wire.listed_version(LISTED)
    assert listed.category is Category.PHOTO
    assert listed.child_ids == (ID,)
    assert listed.created_at == datetime(2026, 11, 22, 18, tzinfo=UTC)
    assert listed.encrypted_metadata == b"\x00\x00\x00"


def test_a_proposal_is_typed() -> None:
    proposal = wire.proposal(PROPOSAL)
    assert proposal.pending and proposal.beneficiary_vouched_by == ()
    assert proposal.decided_at is None and proposal.enrolment_code is None
    approved = wire.proposal(
        _with(PROPOSAL, enrolment_code="ABCD-EFGH", code_expires_at="2026-11-23T18:00:00Z")
    )
    assert approved.enrolment_code is not None
    assert approved.enrolment_code.expires_at.tzinfo is not None


def test_an_offboarding_is_typed_and_a_malformed_one_refused() -> None:
    body: dict[str, Any] = {
        "principal_id": ID,
        "dry_run": True,
        "roles": ["dsl"],
        "assignments_ended": [ID],
        "devices_revoked": [],
        "codes_voided": 1,
        "proposals_cancelled": [],
        "shares_kept": 0,
        "announced_to": [ID],
    }
    done = wire.offboarded(body)
    assert done.dry_run and done.assignments_ended == (ID,) and done.codes_voided == 1
    with pytest.raises(MalformedAnswer, match="codes_voided"):
        wire.offboarded(_with(body, codes_voided="1"))
    with pytest.raises(MalformedAnswer, match="devices_revoked"):
        wire.offboarded(_with(body, devices_revoked=None))


def test_upload_plans_are_typed() -> None:
    assert wire.new_version(
        {
            "ephemeral_public": "AAAA",
            "attributes": ATTRIBUTES,
            "sealed_key": "AAAA",
            "upload": {"method": "single", "url": "http://store/x"},
        }
    ).upload == SingleUpload(url="http://store/x")
    multipart = {"method": "multipart", "part_size": 5, "part_urls": ["u1", "u2"]}
    assert wire._upload(Fields(multipart, "plan")) == MultipartUpload(5, ("u1", "u2"))


def test_a_release_keeps_only_granted_items() -> None:
    denied = {"record_id": ID, "version": 2, "status": "denied", "code": "unavailable"}
    release = wire.release({"ephemeral_public": "AAAA", "results": [GRANTED, denied]})
    (granted,) = release.granted
    assert granted.key.attributes.version == 1
    assert granted.ciphertext.size == 100
    assert granted.ciphertext.digest == CiphertextDigest("blake3", bytes(32))
    assert granted.download_url is None and granted.encrypted_metadata is None


@pytest.mark.parametrize(
    ("parse", "body", "said"),
    [
        (wire.listed_version, _with(LISTED, version="2"), "integer in 'version'"),
        (wire.listed_version, _with(LISTED, version=True), "integer in 'version'"),
        (wire.listed_version, _with(LISTED, created_at="yesterday"), "time in 'created_at'"),
        (wire.listed_version, _with(LISTED, created_at="2026-11-22T18:00:00"), "zone"),
        (wire.listed_version, _with(LISTED, child_ids=ID), "list of texts in 'child_ids'"),
        (wire.listed_version, _with(LISTED, category="diary"), "unknown category"),
        (wire.listed_version, _with(LISTED, encrypted_metadata=None), "'encrypted_metadata'"),
        (wire.listed_versions, LISTED, "not a JSON list"),
        (wire.proposal, _with(PROPOSAL, payload=[]), "object in 'payload'"),
        (wire.proposal, _with(PROPOSAL, proposal_id=None), "text in 'proposal_id'"),
        (
            wire.proposal,
            _with(PROPOSAL, enrolment_codes=[{"line": 2, "principal_id": ID}]),
            "'display_name'",
        ),
        (wire.me, [], "not a JSON object"),
        (
            wire.release,
            {"ephemeral_public": "AAAA", "results": [_with(GRANTED, status="maybe")]},
            "unknown status",
        ),
        (
            wire.release,
            {"ephemeral_public": "AAAA", "results": [_with(GRANTED, attributes={})]},
            "text in 'record_id'",
        ),
        (
            wire.release,
            {"ephemeral_public": "AAAA", "results": [_with(GRANTED, sealed_key=7)]},
            "'sealed_key'",
        ),
        (wire.release, {"ephemeral_public": "AAAA", "results": {}}, "list in 'results'"),
    ],
)
def test_a_malformed_answer_says_what_is_wrong(
    parse: Callable[[object], object], body: object, said: str
) -> None:
    with pytest.raises(MalformedAnswer, match=said):
        parse(body)


@pytest.mark.parametrize(
    ("plan", "said"),
    [
        ({"method": "carrier-pigeon"}, "unknown upload method 'carrier-pigeon'"),
        ({"method": "single"}, "text in 'url'"),
        ({"method": "multipart", "part_size": 0, "part_urls": ["u"]}, "no parts"),
        ({"method": "multipart", "part_size": 5, "part_urls": []}, "no parts"),
    ],
)
def test_a_malformed_upload_plan_is_refused(plan: dict[str, object], said: str) -> None:
    with pytest.raises(MalformedAnswer, match=said):
        wire._upload(Fields(plan, "the upload plan"))


def _answers_changed(path_end: str, change: Callable[[Any], Any]) -> httpx.MockTransport:
    """The real key service, with the JSON answer to requests whose path ends ``path_end``
    replaced by ``change(answer)``."""

    def answer(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = forward(request)
        if not request.url.path.endswith(path_end):
            return response
        return httpx.Response(response.status_code, json=change(json.loads(response.content)))

    return relay(answer)


def test_a_malformed_answer_is_a_key_service_error_naming_the_request(
    client: Client, child: str
) -> None:
    client.put(child_ids=[child], category="observation", stream=io.BytesIO(b"hello"))

    def undated(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**item, "created_at": None} for item in listed]

    misled = Client(client.identity, transport=_answers_changed("/records", undated))
    with pytest.raises(KeyServiceError) as caught:
        misled.records(child)
    said = str(caught.value)
    assert f"GET /v1/children/{child}/records" in said
    assert "no time in 'created_at'" in said
    assert isinstance(caught.value.__cause__, MalformedAnswer)


def test_an_unknown_upload_method_stores_nothing(client: Client, child: str) -> None:
    def pigeon(created: dict[str, Any]) -> dict[str, Any]:
        return {**created, "upload": {"method": "carrier-pigeon"}}

    sent: list[httpx.Request] = []
    misled = Client(
        client.identity,
        transport=_answers_changed("/v1/records", pigeon),
        blob_client=httpx.Client(event_hooks={"request": [sent.append]}),
    )
    with pytest.raises(KeyServiceError, match="unknown upload method") as caught:
        misled.put(child_ids=[child], category="observation", stream=io.BytesIO(b"x"))
    assert not isinstance(caught.value, UploadError)
    assert sent == [], "nothing went to storage"
    assert client.records(child) == []
