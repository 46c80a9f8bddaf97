"""Blob URL tokens: only an unexpired token, for its method, signed with our key, opens."""

from __future__ import annotations

import base64
import json

import pytest

from vault.storage import BlobGrant, InvalidToken, TokenSigner, new_object_name

KEY = bytes(range(32))
NOW = 1_800_000_000


def grant(**changes: object) -> BlobGrant:
    fields: dict[str, object] = {"name": new_object_name(), "method": "GET", "expires_at": NOW}
    fields.update(changes)
    return BlobGrant(**fields)  # type: ignore[arg-type]


def test_round_trip_before_expiry() -> None:
    signer = TokenSigner(KEY)
    issued = grant(expires_at=NOW + 60)
    assert signer.verify(signer.sign(issued), method="GET", now=NOW) == issued
    part = grant(
        method="PUT", upload_id=new_object_name(), part_number=3, expires_at=NOW + 1, size=7
    )
    assert signer.verify(signer.sign(part), method="PUT", now=NOW + 0.5) == part
    whole = grant(method="PUT", expires_at=NOW + 1, size=0)
    assert signer.verify(signer.sign(whole), method="PUT", now=NOW) == whole


@pytest.mark.parametrize("now", [NOW, NOW + 0.001, NOW + 3600])
def test_expired_token_is_refused(now: float) -> None:
    signer = TokenSigner(KEY)
    with pytest.raises(InvalidToken):
        signer.verify(signer.sign(grant(expires_at=NOW)), method="GET", now=now)


def test_token_for_another_method_is_refused() -> None:
    signer = TokenSigner(KEY)
    with pytest.raises(InvalidToken):
        signer.verify(signer.sign(grant(expires_at=NOW + 60)), method="PUT", now=NOW)
    with pytest.raises(InvalidToken):
        put = grant(method="PUT", expires_at=NOW + 60, size=1)
        signer.verify(signer.sign(put), method="GET", now=NOW)


def test_token_signed_with_another_key_is_refused() -> None:
    token = TokenSigner(b"\x01" * 32).sign(grant(expires_at=NOW + 60))
    with pytest.raises(InvalidToken):
        TokenSigner(KEY).verify(token, method="GET", now=NOW)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_altered_claims_are_refused() -> None:
    signer = TokenSigner(KEY)
    token = signer.sign(grant(method="PUT", expires_at=NOW + 60, size=5))
    claims_part, tag_part = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims_part + "=="))
    assert claims["s"] == 5
    for field, value in [
        ("e", NOW + 10**6),
        ("n", new_object_name()),
        ("m", "GET"),
        ("s", 8 * 1024 * 1024),
        ("s", None),
    ]:
        forged = dict(claims, **{field: value})
        encoded = _encode(json.dumps(forged, separators=(",", ":"), sort_keys=True).encode())
        with pytest.raises(InvalidToken):
            signer.verify(f"{encoded}.{tag_part}", method=forged["m"], now=NOW)


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
        lambda t: "." + t.split(".")[1],
        lambda t: t.split(".")[0] + ".",
        lambda t: t.replace(".", ".\n"),
        lambda t: t.replace(".", ".!!!!"),  # the decoder would skip "!"; we must not
        lambda t: "é" + t,
        lambda t: t + "A" * 2000,
        lambda t: "",
    ],
)
def test_damaged_tokens_are_refused(damage: object) -> None:
    signer = TokenSigner(KEY)
    token = signer.sign(grant(expires_at=NOW + 60))
    assert callable(damage)
    with pytest.raises(InvalidToken):
        signer.verify(damage(token), method="GET", now=NOW)


def test_validly_signed_nonsense_is_refused() -> None:
    signer = TokenSigner(KEY)
    tag = signer._tag  # the only way to sign claims the signer would never issue
    name = new_object_name()
    for claims in [
        b"[]",
        b"{}",
        b'{"v":2}',
        b"not json",
        b'{"e":"1","m":"GET","n":"x"}',
        # Version 1 carried no size; its upload tokens must not pass for unbounded ones.
        f'{{"e":{NOW + 60},"m":"PUT","n":"{name}","p":null,"u":null,"v":1}}'.encode(),
        f'{{"e":{NOW + 60},"m":"PUT","n":"{name}","p":null,"s":true,"u":null,"v":2}}'.encode(),
    ]:
        token = f"{_encode(claims)}.{_encode(tag(claims))}"
        with pytest.raises(InvalidToken) as caught:
            signer.verify(token, method="GET", now=NOW)
        assert caught.value.__cause__ is not None


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"k" * 31)


def test_signer_repr_hides_the_key() -> None:
    assert KEY.hex() not in repr(TokenSigner(KEY))
    assert str(KEY) not in repr(TokenSigner(KEY))


def test_grants_are_validated_when_built() -> None:
    with pytest.raises(ValueError):
        grant(method="DELETE")
    with pytest.raises(ValueError):
        grant(method="PUT", upload_id=new_object_name())
    with pytest.raises(ValueError):
        grant(method="GET", upload_id=new_object_name(), part_number=1)
    with pytest.raises(ValueError):
        grant(method="PUT", upload_id=new_object_name(), part_number=10_001, size=1)
    for size in [None, -1, True, 5 * 1024**4 + 1, 1.0]:
        with pytest.raises(ValueError):
            grant(method="PUT", size=size)
    with pytest.raises(ValueError):
        grant(method="PUT", upload_id=new_object_name(), part_number=1, size=5 * 1024**3 + 1)
    with pytest.raises(ValueError):
        grant(method="GET", size=1)
