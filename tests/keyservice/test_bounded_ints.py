"""Integers in paths and bodies are bounded: a number too large for the database is a 422 (or
the 404 of a missing version), never a 5xx (security review, finding 8)."""

from __future__ import annotations

import pytest

from tests.keyservice.helpers import Device, assigned_staff, commit, commit_claim, pending_version
from tests.servers import KeyService

pytestmark = pytest.mark.integration

HUGE = [2**31, 2**63, 10**30]


@pytest.fixture
def educator(service: KeyService, admin: Device) -> tuple[Device, str]:
    return assigned_staff(service, admin)


@pytest.mark.parametrize("version", [*HUGE, 0, -1])
def test_a_version_out_of_range_in_the_path_is_refused(
    educator: tuple[Device, str], version: int
) -> None:
    device, child = educator
    created = pending_version(device, child_ids=[child])
    with device.client() as http:
        answer = http.post(
            f"/v1/records/{created['record_id']}/versions/{version}/commit",
            json=commit_claim(b"abcd"),
        )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("size", "on_create", "on_commit"),
    [
        # Larger than the service takes (413), and not the size the version was created with.
        (2**31, 413, 409),
        # Larger than any object an S3 store holds (5 TiB): the body is invalid.
        (2**63, 422, 422),
        (10**30, 422, 422),
    ],
)
def test_a_size_out_of_range_is_refused(
    educator: tuple[Device, str], size: int, on_create: int, on_commit: int
) -> None:
    device, child = educator
    with device.client() as http:
        created = http.post(
            "/v1/records",
            json={"child_ids": [child], "category": "observation", "ciphertext_size": size},
        )
    pending = pending_version(device, child_ids=[child])
    committed = commit(device, pending, commit_claim(b"abcd", ciphertext_size=size))
    assert (created.status_code, committed.status_code) == (on_create, on_commit), (
        created.text,
        committed.text,
    )


@pytest.mark.parametrize("version", [2**31, 10**30])
def test_a_version_out_of_range_in_a_release_is_refused(
    educator: tuple[Device, str], version: int
) -> None:
    device, _ = educator
    with device.client() as http:
        answer = http.post(
            "/v1/keys/release",
            json={"items": [{"record_id": "0" * 32, "version": version}]},
        )
    assert answer.status_code == 422, answer.text
