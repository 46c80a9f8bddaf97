"""Two-person approval of read-giving changes; device provenance; ending orders and consents.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
