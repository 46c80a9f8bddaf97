"""Every MUST of docs/SIGNING.md as a named failing vector against the real service.

Each vector builds a correctly signed request, breaks exactly one thing, and expects the one
generic 401; the precise reason must reach the audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    HTTPSignatureKeyResolver,
    algorithms,
)
from sqlalchemy import text

from tests.keyservice.conftest import database
from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    assigned_staff,
    bootstrap_admin,
    ok,
    put_record,
)
from tests.servers import KeyService, KeyServiceFactory
from vault.signing import AUDIENCE_HEADER, COVERED_COMPONENTS

pytestmark = pytest.mark.integration

BODY = json.dumps({"items": [{"record_id": "ab" * 16, "version": 1}]}).encode()


class _Key(HTTPSignatureKeyResolver):
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        return self.key


class _NotEd25519(algorithms.ED25519):
    algorithm_id = "hmac-sha256"


def _request(
    device: Device, *, method: str = "POST", path: str = "/v1/keys/release", body: bytes = BODY
) -> httpx.Request:
    return httpx.Request(
        method,
        f"{device.base_url}{path}",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def _sign(
    device: Device,
    request: httpx.Request,
    *,
    key: Ed25519PrivateKey | None = None,
    key_id: str | None = None,
    audience: str | None = None,
    covered: tuple[str, ...] = COVERED_COMPONENTS,
    tag: str | None = "carevault",
    include_alg: bool = True,
    algorithm: type[algorithms.ED25519] = algorithms.ED25519,
    created: float | None = None,
    nonce: str | None = "0123456789abcdef0123456789abcdef",
    sign_body: bool = True,
    expires: float | None = None,
    label: str = "carevault",
    append: bool = False,
) -> httpx.Request:
    """Sign like RequestSigner, with every knob exposed so a vector can turn one."""
    request.headers[AUDIENCE_HEADER] = audience or device.audience
    HTTPMessageSigner(
        signature_algorithm=algorithm, key_resolver=_Key(key or device.signing_key)
    ).sign(
        request,
        key_id=key_id or device.device_id,
        created=datetime.fromtimestamp(created or time.time(), tz=UTC),
        expires=datetime.fromtimestamp(expires, tz=UTC) if expires is not None else None,
        nonce=nonce,
        label=label,
        append_if_signature_exists=append,
        use_existing_digest=append,
        tag=tag,
        include_alg=include_alg,
        covered_component_ids=covered,
        # Given the body, the library adds and covers Content-Digest itself.
        body=request.content if sign_body else None,
    )
    return request


def _fresh_nonce() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw()[:16].hex()


def _send(request: httpx.Request) -> httpx.Response:
    with httpx.Client(timeout=30.0) as http:
        return http.send(request)


def _assert_rejected(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "authentication failed"
    assert response.json()["detail"] == "authentication failed"


def _resign_with_altered(request: httpx.Request, **changes: str) -> httpx.Request:
    """A copy of a signed request with its method or URL changed but its signature kept."""
    return httpx.Request(
        changes.get("method", request.method),
        changes.get("url", str(request.url)),
        content=request.content,
        headers=request.headers,
    )


Vector = Callable[[Device, Device], httpx.Request]

VECTORS: dict[str, Vector] = {
    "missing_signature": lambda d, _: _request(d),
    "wrong_key": lambda d, _: _sign(
        d, _request(d), key=Ed25519PrivateKey.generate(), nonce=_fresh_nonce()
    ),
    "unknown_device": lambda d, _: _sign(d, _request(d), key_id="cd" * 16, nonce=_fresh_nonce()),
    "tampered_body": lambda d, _: httpx.Request(
        "POST",
        f"{d.base_url}/v1/keys/release",
        content=BODY.replace(b'"version": 1', b'"version": 2'),
        headers={
            k: v
            for k, v in _sign(d, _request(d), nonce=_fresh_nonce()).headers.items()
            if k != "content-length"
        },
    ),
    # The signed Content-Digest header itself replaced: the signature no longer verifies.
    "digest_header_altered": lambda d, _: _with_header(
        _sign(d, _request(d), nonce=_fresh_nonce()),
        "Content-Digest",
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
    ),
    # Signed as a GET, sent as the POST the route accepts.
    "method_altered": lambda d, _: _resign_with_altered(
        _sign(d, _request(d, method="GET"), nonce=_fresh_nonce()), method="POST"
    ),
    "path_altered": lambda d, _: _resign_with_altered(
        _sign(d, _request(d), nonce=_fresh_nonce()), url=f"{d.base_url}/v1/records"
    ),
    "query_altered": lambda d, _: _resign_with_altered(
        _sign(d, _request(d, path="/v1/keys/release?x=1"), nonce=_fresh_nonce()),
        url=f"{d.base_url}/v1/keys/release?x=2",
    ),
    "created_too_old": lambda d, _: _sign(
        d, _request(d), created=time.time() - 180, nonce=_fresh_nonce()
    ),
    "created_in_future": lambda d, _: _sign(
        d, _request(d), created=time.time() + 180, nonce=_fresh_nonce()
    ),
    "wrong_audience": lambda d, _: _sign(
        d, _request(d), audience="another-deployment", nonce=_fresh_nonce()
    ),
    "missing_audience_component": lambda d, _: _sign(
        d, _request(d), covered=("@method", "@target-uri", "content-digest"), nonce=_fresh_nonce()
    ),
    "missing_target_component": lambda d, _: _sign(
        d,
        _request(d),
        covered=("@method", "content-digest", "carevault-audience"),
        nonce=_fresh_nonce(),
    ),
    # The digest is sent but not signed.
    "missing_digest_component": lambda d, _: _with_header(
        _sign(
            d,
            _request(d),
            covered=("@method", "@target-uri", "carevault-audience"),
            nonce=_fresh_nonce(),
            sign_body=False,
        ),
        "Content-Digest",
        ContentDigest.create(BODY),
    ),
    "wrong_tag": lambda d, _: _sign(d, _request(d), tag="other", nonce=_fresh_nonce()),
    "missing_tag": lambda d, _: _sign(d, _request(d), tag=None, nonce=_fresh_nonce()),
    "missing_alg": lambda d, _: _sign(d, _request(d), include_alg=False, nonce=_fresh_nonce()),
    "wrong_alg": lambda d, _: _sign(d, _request(d), algorithm=_NotEd25519, nonce=_fresh_nonce()),
    "missing_nonce": lambda d, _: _sign(d, _request(d), nonce=None),
    "malformed_nonce": lambda d, _: _sign(d, _request(d), nonce="not-a-hex-nonce"),
    "revoked_device": lambda _, revoked: _sign(revoked, _request(revoked), nonce=_fresh_nonce()),
    "unexpected_parameter": lambda d, _: _sign(
        d, _request(d), expires=time.time() + 30, nonce=_fresh_nonce()
    ),
    # A second, otherwise valid signature under another label on the same request.
    "two_signatures": lambda d, _: _sign(
        d,
        _sign(d, _request(d), nonce=_fresh_nonce()),
        label="second",
        nonce=_fresh_nonce(),
        append=True,
    ),
}

# The reason each vector must be audited with (docs/SIGNING.md's table): a request refused
# for another reason than the one it was built to exercise does not pass.
REASONS: dict[str, str] = {
    "missing_signature": "missing_signature",
    "wrong_key": "bad_signature",
    "unknown_device": "unknown_device",
    "tampered_body": "digest_mismatch",
    "digest_header_altered": "bad_signature",
    "method_altered": "bad_signature",
    "path_altered": "bad_signature",
    "query_altered": "bad_signature",
    "created_too_old": "created_too_old",
    "created_in_future": "created_in_future",
    "wrong_audience": "wrong_audience",
    "missing_audience_component": "missing_component",
    "missing_target_component": "missing_component",
    "missing_digest_component": "missing_component",
    "wrong_tag": "wrong_tag",
    "missing_tag": "wrong_tag",
    "missing_alg": "wrong_alg",
    "wrong_alg": "wrong_alg",
    "missing_nonce": "missing_nonce",
    "malformed_nonce": "missing_nonce",
    "revoked_device": "revoked_device",
    "unexpected_parameter": "unexpected_parameter",
    "two_signatures": "missing_signature",
}


def _with_header(request: httpx.Request, name: str, value: str) -> httpx.Request:
    request.headers[name] = value
    return request


@pytest.fixture(scope="module")
def devices(keyservice_embedded: KeyService) -> tuple[Device, Device]:
    from tests.keyservice.helpers import bootstrap_admin

    admin = bootstrap_admin(keyservice_embedded)
    device = admin_enrols(keyservice_embedded, admin, kind="staff", roles=["educator"])
    revoked = admin_enrols(keyservice_embedded, admin, kind="staff", roles=["educator"])
    with admin.client() as http:
        ok(http.post(f"/v1/admin/devices/{revoked.device_id}/revoke"))
    return device, revoked


def test_a_correctly_signed_request_is_accepted(devices: tuple[Device, Device]) -> None:
    device, _ = devices
    response = _send(_sign(device, _request(device), nonce=_fresh_nonce()))
    assert response.status_code == 200, response.text


def _last_seq(service: KeyService) -> int:
    engine = database(service)
    with engine.connect() as connection:
        seq: int = connection.execute(text("SELECT max(seq) FROM audit_entries")).scalar_one()
    engine.dispose()
    return seq


def _rejections_since(service: KeyService, seq: int) -> list[str]:
    """The reasons of the auth.reject entries written after entry ``seq``."""
    engine = database(service)
    with engine.connect() as connection:
        details = connection.execute(
            text(
                "SELECT detail FROM audit_entries WHERE action = 'auth.reject' AND seq > :seq "
                "ORDER BY seq"
            ),
            {"seq": seq},
        ).scalars()
        reasons = [json.loads(detail)["reason"] for detail in details]
    engine.dispose()
    return reasons


def test_every_vector_has_its_reason() -> None:
    assert set(VECTORS) == set(REASONS)


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_verifier_rejects_with_the_audited_reason(
    vector: str, devices: tuple[Device, Device], keyservice_embedded: KeyService
) -> None:
    device, revoked = devices
    before = _last_seq(keyservice_embedded)
    _assert_rejected(_send(VECTORS[vector](device, revoked)))
    assert _rejections_since(keyservice_embedded, before) == [REASONS[vector]]


def test_a_revoked_principal_is_rejected_even_with_an_active_device(
    devices: tuple[Device, Device], keyservice_embedded: KeyService
) -> None:
    from tests.keyservice.helpers import bootstrap_admin

    admin = bootstrap_admin(keyservice_embedded)
    person = admin_enrols(keyservice_embedded, admin, kind="staff", roles=["educator"])
    # The API revokes a principal's devices with it; here only the principal is marked, so
    # that the principal check itself is what refuses.
    engine = database(keyservice_embedded)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE principals SET revoked_at = :now WHERE principal_id = :p"),
            {"now": datetime.now(UTC), "p": person.principal_id},
        )
    engine.dispose()
    before = _last_seq(keyservice_embedded)
    _assert_rejected(_send(_sign(person, _request(person), nonce=_fresh_nonce())))
    assert _rejections_since(keyservice_embedded, before) == ["revoked_principal"]


def test_replayed_nonce_is_rejected(devices: tuple[Device, Device]) -> None:
    device, _ = devices
    first = _sign(device, _request(device), nonce=_fresh_nonce())
    assert _send(first).status_code == 200
    _assert_rejected(_send(first))


@pytest.fixture(params=["embedded", "production"])
def two_instances(
    request: pytest.FixtureRequest, keyservice_factory: KeyServiceFactory
) -> tuple[KeyService, KeyService, Device]:
    """A key service of its own, a second instance of it on the same database, and its admin."""
    first = keyservice_factory(flavour=request.param)
    return first, keyservice_factory.start(first.env), bootstrap_admin(first)


def test_replay_is_rejected_by_a_second_instance_on_the_same_database(
    two_instances: tuple[KeyService, KeyService, Device],
) -> None:
    first, second, admin = two_instances
    request = _sign(admin, httpx.Request("GET", f"{first.base_url}/v1/me"), nonce=_fresh_nonce())
    assert _send(request).status_code == 200
    # The same bytes to the other instance: same URL (the Host it was signed for), other port.
    replay = httpx.Request("GET", f"{second.base_url}/v1/me", headers=request.headers)
    _assert_rejected(_send(replay))
    fresh = _sign(admin, httpx.Request("GET", f"{first.base_url}/v1/me"), nonce=_fresh_nonce())
    assert (
        _send(httpx.Request("GET", f"{second.base_url}/v1/me", headers=fresh.headers)).status_code
        == 200
    )


# Key releases spend their nonce in their audit entry's group commit (decision 0007), not
# before their work like every other route: these are the replays that must still fail.


@pytest.fixture
def releasing(service: KeyService, admin: Device) -> tuple[KeyService, Device, bytes]:
    """An educator, a record it may have, and a release request body for that record."""
    educator, body = _educator_and_release_body(service, admin)
    return service, educator, body


def _educator_and_release_body(service: KeyService, admin: Device) -> tuple[Device, bytes]:
    educator, child = assigned_staff(service, admin)
    record = put_record(educator, child_ids=[child])
    return educator, json.dumps({"items": [{"record_id": record.record_id, "version": 1}]}).encode()


def _releases_since(service: KeyService, seq: int, device: Device) -> int:
    engine = database(service)
    with engine.connect() as connection:
        count: int = connection.execute(
            text(
                "SELECT count(*) FROM audit_entries WHERE action = 'keys.release' "
                "AND seq > :seq AND actor_device = :device"
            ),
            {"seq": seq, "device": device.device_id},
        ).scalar_one()
    engine.dispose()
    return count


def _assert_released_once(responses: list[httpx.Response]) -> None:
    """One answer carries the key; every other is the generic 401 and carries nothing."""
    assert sorted(r.status_code for r in responses) == [200] + [401] * (len(responses) - 1)
    for response in responses:
        if response.status_code == 200:
            assert response.json()["results"][0]["status"] == "granted"
        else:
            _assert_rejected(response)
            assert "sealed_key" not in response.text


def test_a_replayed_release_is_refused_and_audited(
    releasing: tuple[KeyService, Device, bytes],
) -> None:
    service, educator, body = releasing
    before = _last_seq(service)
    signed = _sign(educator, _request(educator, body=body), nonce=_fresh_nonce())
    _assert_released_once([_send(signed), _send(signed)])
    assert _rejections_since(service, before) == ["replayed_nonce"]
    assert _releases_since(service, before, educator) == 1


def test_concurrent_copies_of_one_release_are_released_once(
    releasing: tuple[KeyService, Device, bytes],
) -> None:
    """Eight copies of one signed release sent at once: exactly one is served, seven get the
    generic 401 and an ``auth.reject`` (``replayed_nonce``) entry, and one release entry is
    written. Whether the copies meet in one group-commit batch or several is not checked."""
    service, educator, body = releasing
    before = _last_seq(service)
    signed = _sign(educator, _request(educator, body=body), nonce=_fresh_nonce())
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: _send(signed), range(8)))
    _assert_released_once(responses)
    assert _rejections_since(service, before) == ["replayed_nonce"] * 7
    assert _releases_since(service, before, educator) == 1


def test_a_release_cannot_reuse_a_nonce_another_route_spent(
    releasing: tuple[KeyService, Device, bytes],
) -> None:
    service, educator, body = releasing
    nonce = _fresh_nonce()
    assert _send(_sign(educator, httpx.Request("GET", f"{service.base_url}/v1/me"), nonce=nonce))
    before = _last_seq(service)
    _assert_rejected(_send(_sign(educator, _request(educator, body=body), nonce=nonce)))
    assert _rejections_since(service, before) == ["replayed_nonce"]
    assert _releases_since(service, before, educator) == 0


def test_an_invalid_release_body_spends_its_nonce(
    releasing: tuple[KeyService, Device, bytes],
) -> None:
    service, educator, _ = releasing
    signed = _sign(educator, _request(educator, body=b'{"items": []}'), nonce=_fresh_nonce())
    assert _send(signed).status_code == 422
    before = _last_seq(service)
    _assert_rejected(_send(signed))
    assert _rejections_since(service, before) == ["replayed_nonce"]


def test_an_unsigned_release_with_an_invalid_body_is_refused_before_validation(
    service: KeyService,
) -> None:
    response = _send(
        httpx.Request("POST", f"{service.base_url}/v1/keys/release", content=b'{"items": 1}')
    )
    _assert_rejected(response)


def test_a_release_replayed_to_a_second_instance_is_refused(
    two_instances: tuple[KeyService, KeyService, Device],
) -> None:
    first, second, admin = two_instances
    educator, body = _educator_and_release_body(first, admin)
    signed = _sign(educator, _request(educator, body=body), nonce=_fresh_nonce())
    released = _send(signed)
    # The same bytes to the other instance: same URL (the Host it was signed for), other port.
    replay = httpx.Request(
        "POST", f"{second.base_url}/v1/keys/release", content=body, headers=signed.headers
    )
    _assert_released_once([released, _send(replay)])
    assert _rejections_since(first, 0)[-1] == "replayed_nonce"
