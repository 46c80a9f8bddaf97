"""The algorithm of each version's committed ciphertext digest (issue 17, decision 0022):
BLAKE3 for new commits; every version committed before keeps its SHA-256, named so.

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "ciphertext_digest_alg",
                sa.String(length=16),
                nullable=False,
                server_default="sha256",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.drop_column("ciphertext_digest_alg")
