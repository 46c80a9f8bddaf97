"""Rotation jobs (issue 15, parts 2 and 3): the jobs table, which root provider and version
wrapped each child key version, a minimum decryption version per child, and an index for the
wraps of one child key version.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.String(length=32)
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.add_column(sa.Column("min_decryption_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("child_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("root_provider", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("root_version", sa.Integer(), nullable=True))
    op.create_index(
        "ix_wrapped_record_keys_child_version",
        "wrapped_record_keys",
        ["child_id", "child_key_version"],
    )
    op.create_table(
        "rotation_jobs",
        sa.Column("job_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("running_key", sa.String(length=64), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.String(length=200), nullable=True),
        sa.Column("started_by", ID, nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.Column("finished_at", AT, nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires", AT, nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name="pk_rotation_jobs"),
        sa.UniqueConstraint("running_key", name="uq_rotation_jobs_running_key"),
    )
    op.create_index("ix_rotation_jobs_state", "rotation_jobs", ["state"])


def downgrade() -> None:
    op.drop_index("ix_rotation_jobs_state", table_name="rotation_jobs")
    op.drop_table("rotation_jobs")
    op.drop_index("ix_wrapped_record_keys_child_version", table_name="wrapped_record_keys")
    with op.batch_alter_table("child_keys", schema=None) as batch_op:
        batch_op.drop_column("root_version")
        batch_op.drop_column("root_provider")
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_column("min_decryption_version")
