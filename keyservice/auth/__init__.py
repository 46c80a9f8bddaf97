"""Signed-request authentication (docs/SIGNING.md): the verifier and the replay cache."""

from keyservice.auth.nonces import ReplayCache
from keyservice.auth.verifier import SKEW, SignedRequest, verify_request

__all__ = ["SKEW", "ReplayCache", "SignedRequest", "verify_request"]
