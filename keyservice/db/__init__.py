"""The key service's database: tables, engine set-up and migrations (SQLite or PostgreSQL)."""

from keyservice.db.engine import make_engine
from keyservice.db.migrate import upgrade_to_head
from keyservice.db.tables import metadata

__all__ = ["make_engine", "metadata", "upgrade_to_head"]
