"""The catalog's key and policy plumbing: child keys, policy facts, rotation."""

from keyservice.catalog.child_keys import ChildKeyCache, active_versions, create_child_key
from keyservice.catalog.facts import Relationships, decide_for, load_relationships
from keyservice.catalog.rotation import Started, start_child_rotation, start_root_rotation

__all__ = [
    "ChildKeyCache",
    "Relationships",
    "Started",
    "active_versions",
    "create_child_key",
    "decide_for",
    "load_relationships",
    "start_child_rotation",
    "start_root_rotation",
]
