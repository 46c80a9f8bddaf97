"""Both root key providers: wrap/unwrap, versions, rotation and opaque failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keyservice.errors import KeyServiceError, KeyUnwrapError
from keyservice.keys import FakeRootKeyProvider, LocalFileRootKeyProvider, RootKeyProvider

Factory = Callable[[Path], RootKeyProvider]
PROVIDERS: dict[str, Factory] = {
    "fake": lambda _: FakeRootKeyProvider(),
    "local-file": lambda tmp: LocalFileRootKeyProvider(tmp / "root.key"),
}


@pytest.fixture(params=sorted(PROVIDERS))
def root(request: pytest.FixtureRequest, tmp_path: Path) -> RootKeyProvider:
    factory: Factory = PROVIDERS[request.param]
    return factory(tmp_path)


def test_round_trip(root: RootKeyProvider) -> None:
    wrapped = root.wrap(b"child key material", context=b"ctx")
    assert b"child key material" not in wrapped
    assert root.unwrap(wrapped, context=b"ctx") == b"child key material"


def test_wrapped_output_embeds_the_version(root: RootKeyProvider) -> None:
    assert root.current_version() == 1
    assert root.wrap(b"k", context=b"c")[:4] == (1).to_bytes(4, "big")


def test_wrong_context_fails(root: RootKeyProvider) -> None:
    wrapped = root.wrap(b"secret", context=b"child-a")
    with pytest.raises(KeyUnwrapError):
        root.unwrap(wrapped, context=b"child-b")


@pytest.mark.parametrize("position", [0, 3, 4, 15, 16, -1])
def test_tampered_bytes_fail(root: RootKeyProvider, position: int) -> None:
    wrapped = bytearray(root.wrap(b"secret", context=b"c"))
    wrapped[position] ^= 0x01
    with pytest.raises(KeyUnwrapError):
        root.unwrap(bytes(wrapped), context=b"c")


@pytest.mark.parametrize("length", [0, 3, 4, 31])
def test_truncated_fails(root: RootKeyProvider, length: int) -> None:
    wrapped = root.wrap(b"secret", context=b"c")
    with pytest.raises(KeyUnwrapError):
        root.unwrap(wrapped[:length], context=b"c")


def test_unknown_version_fails(root: RootKeyProvider) -> None:
    wrapped = root.wrap(b"secret", context=b"c")
    with pytest.raises(KeyUnwrapError):
        root.unwrap((7).to_bytes(4, "big") + wrapped[4:], context=b"c")


def test_rotation_keeps_old_versions_unwrappable(root: RootKeyProvider) -> None:
    old = root.wrap(b"old secret", context=b"c")
    assert root.rotate() == 2
    assert root.current_version() == 2
    new = root.wrap(b"new secret", context=b"c")
    assert new[:4] == (2).to_bytes(4, "big")
    assert root.unwrap(old, context=b"c") == b"old secret"
    assert root.unwrap(new, context=b"c") == b"new secret"


def test_a_version_relabelled_as_another_fails(root: RootKeyProvider) -> None:
    old = root.wrap(b"secret", context=b"c")
    root.rotate()
    with pytest.raises(KeyUnwrapError):
        root.unwrap((2).to_bytes(4, "big") + old[4:], context=b"c")


def test_providers_do_not_share_keys(tmp_path: Path) -> None:
    wrapped = FakeRootKeyProvider().wrap(b"secret", context=b"c")
    with pytest.raises(KeyUnwrapError):
        FakeRootKeyProvider().unwrap(wrapped, context=b"c")
    with pytest.raises(KeyUnwrapError):
        LocalFileRootKeyProvider(tmp_path / "a.key").unwrap(wrapped, context=b"c")


def test_unwrap_error_is_opaque_and_chained(root: RootKeyProvider) -> None:
    wrapped = root.wrap(b"secret", context=b"c")
    with pytest.raises(KeyUnwrapError) as caught:
        root.unwrap(wrapped, context=b"d")
    assert str(caught.value) == "wrapped key could not be unwrapped"
    assert caught.value.__cause__ is not None
    assert isinstance(caught.value, KeyServiceError)
