"""The key hierarchy's public surface, which the key service app imports."""

from __future__ import annotations

import keyservice.keys
from keyservice.keys import FakeRootKeyProvider, LocalFileRootKeyProvider, RootKeyProvider


def test_public_surface() -> None:
    assert sorted(keyservice.keys.__all__) == [
        "FakeRootKeyProvider",
        "KEY_SIZE",
        "LocalFileRootKeyProvider",
        "RootKeyProvider",
        "generate_key",
        "unwrap_child_key",
        "unwrap_record_key",
        "wrap_child_key",
        "wrap_record_key",
    ]


def test_providers_have_every_method_of_the_interface() -> None:
    methods = {"wrap", "unwrap", "current_version", "rotate"}
    assert methods <= set(vars(RootKeyProvider))
    for provider in (FakeRootKeyProvider, LocalFileRootKeyProvider):
        assert methods <= set(vars(provider))
