"""The local-directory store's blob routes, ``GET/PUT /v1/blobs/{token}`` (embedded only)."""

from __future__ import annotations

import httpx
import pytest

from tests.keyservice.helpers import Device, admin_enrols, assign, create_child, put_record, release
from tests.servers import KeyService

pytestmark = pytest.mark.integration


@pytest.fixture
def educator(service: KeyService, admin: Device) -> tuple[Device, str]:
    if service.env.get("CAREVAULT_BLOB_STORE", "local").startswith("s3"):
        pytest.skip("the blob routes exist only with the local-directory store")
    child = create_child(admin)
    device = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=device.principal_id, child_id=child, role="educator")
    return device, child


def _download_url(device: Device, child: str) -> str:
    stored = put_record(device, child_ids=[child], ciphertext=bytes(range(100)))
    _, results = release(device, [(stored.record_id, 1)], include_urls=True)
    return str(results[(stored.record_id, 1)]["download_url"])


@pytest.mark.parametrize(
    "wanted",
    [
        b"bytes=" + b"1" * 5000 + b"-",
        b"bytes=-" + b"9" * 5000,
        b"bytes=0-" + b"9" * 20,
        "bytes=\u0661-\u0662".encode(),  # Arabic-Indic digits
        "bytes=\uff11-\uff12".encode(),  # full-width digits
    ],
    ids=["long_start", "long_suffix", "twenty_digit_end", "arabic_indic", "full_width"],
)
def test_range_with_long_or_non_ascii_numbers_is_refused(
    educator: tuple[Device, str], wanted: bytes
) -> None:
    url = _download_url(*educator)
    answer = httpx.get(url, headers=[(b"Range", wanted)], timeout=30.0)
    assert answer.status_code == 416, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_nineteen_digit_range_end_is_clamped(educator: tuple[Device, str]) -> None:
    url = _download_url(*educator)
    answer = httpx.get(url, headers={"Range": "bytes=90-" + "9" * 19}, timeout=30.0)
    assert (answer.status_code, answer.content) == (206, bytes(range(90, 100)))
