"""Audit entries authenticated with a key the database does not hold; timed checkpoints.

No table changes: the entry MAC takes the hash's place in ``audit_entries.hash`` and timed
checkpoints use ``audit_checkpoints`` as they are. A chain written before this revision is
refused by the service, not converted (docs/decisions/0009-audit-mac-and-checkpoints.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
