"""The key service packages' public surfaces: what ``__all__`` promises exists, and no more."""

from __future__ import annotations

import importlib

import pytest

SURFACES = {
    "keyservice.api": ["ROUTERS"],
    "keyservice.audit": [
        "AuditEvent",
        "AuditMac",
        "ChainReport",
        "Checkpoint",
        "Checkpointer",
        "append",
        "checkpoint_head",
        "entry_hash",
        "verify_chain",
    ],
    "keyservice.auth": ["SKEW", "ReplayCache", "SignedRequest", "verify_request"],
    "keyservice.catalog": [
        "ChildKeyCache",
        "Relationships",
        "active_versions",
        "create_child_key",
        "decide_for",
        "load_relationships",
        "Started",
        "start_child_rotation",
        "start_root_rotation",
    ],
    "keyservice.db": ["make_engine", "metadata", "upgrade_to_head"],
    "vault.signing": [
        "AUDIENCE_HEADER",
        "COVERED_COMPONENTS",
        "SIGNATURE_LABEL",
        "SIGNATURE_TAG",
        "RequestSigner",
        "request_nonce",
        "sealing_context",
    ],
}


@pytest.mark.parametrize("name", sorted(SURFACES))
def test_public_surface(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(SURFACES[name])
    for attribute in module.__all__:
        assert hasattr(module, attribute), f"{name}.{attribute}"
