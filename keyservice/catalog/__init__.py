"""The catalog's key and policy plumbing: child keys, policy facts, rotation."""

from keyservice.catalog.child_keys import ChildKeyCache, active_versions, create_child_key
from keyservice.catalog.facts import Relationships, decide_for, load_relationships
from keyservice.catalog.rotation import ChildRotation, rewrap_child_keys, rotate_child_key

__all__ = [
    "ChildKeyCache",
    "ChildRotation",
    "Relationships",
    "active_versions",
    "create_child_key",
    "decide_for",
    "load_relationships",
    "rewrap_child_keys",
    "rotate_child_key",
]
