"""The key hierarchy's public surface, which the key service app imports."""

from __future__ import annotations

import keyservice.keys
from keyservice.keys import (
    FakeRootKeyProvider,
    KmsRootKeyProvider,
    LocalFileRootKeyProvider,
    Pkcs11RootKeyProvider,
    RootKeyProvider,
    RootKeyTransition,
)


def test_public_surface() -> None:
    assert sorted(keyservice.keys.__all__) == [
        "FakeRootKeyProvider",
        "KEY_SIZE",
        "KmsRootKeyProvider",
        "LocalFileRootKeyProvider",
        "Pkcs11RootKeyProvider",
        "RecordKeyRewrapper",
        "RootKeyProvider",
        "RootKeyTransition",
        "generate_child_key",
        "generate_key",
        "move_child_key",
        "open_root_key",
        "parse_root_key",
        "rewrap_child_key",
        "unwrap_child_key",
        "unwrap_record_key",
        "wrap_child_key",
        "wrap_record_key",
    ]


def test_providers_have_every_method_of_the_interface() -> None:
    methods = {"wrap", "unwrap", "rewrap", "generate", "identity", "current_version", "rotate"}
    assert methods <= set(vars(RootKeyProvider))
    providers = (
        FakeRootKeyProvider,
        LocalFileRootKeyProvider,
        KmsRootKeyProvider,
        Pkcs11RootKeyProvider,
        RootKeyTransition,
    )
    for provider in providers:
        assert methods <= set(vars(provider))
