"""Retention and crypto-shredding (issue 15, part 6): children's date of birth and leaving
date, legal holds, shred requests with their certificates.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.String(length=32)
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.add_column(sa.Column("date_of_birth", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("left_on", sa.Date(), nullable=True))
    op.create_table(
        "legal_holds",
        sa.Column("hold_id", ID, nullable=False),
        sa.Column("child_id", ID, nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("set_by", ID, nullable=False),
        sa.Column("set_at", AT, nullable=False),
        sa.Column("lifted_by", ID, nullable=True),
        sa.Column("lifted_at", AT, nullable=True),
        sa.Column("lift_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.child_id"],
            name=op.f("fk_legal_holds_child_id_children"),
        ),
        sa.PrimaryKeyConstraint("hold_id", name=op.f("pk_legal_holds")),
    )
    op.create_index(op.f("ix_legal_holds_child_id"), "legal_holds", ["child_id"])
    op.create_table(
        "shred_requests",
        sa.Column("shred_id", ID, nullable=False),
        sa.Column("target", sa.String(length=8), nullable=False),
        sa.Column("record_id", ID, nullable=True),
        sa.Column("child_id", ID, nullable=True),
        sa.Column("child_ids", sa.String(length=2000), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("requested_by", ID, nullable=False),
        sa.Column("requested_device", ID, nullable=True),
        sa.Column("requested_at", AT, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("approved_by", ID, nullable=True),
        sa.Column("approved_device", ID, nullable=True),
        sa.Column("approved_at", AT, nullable=True),
        sa.Column("not_before", AT, nullable=True),
        sa.Column("cancelled_by", ID, nullable=True),
        sa.Column("cancelled_at", AT, nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("done_at", AT, nullable=True),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=True),
        sa.PrimaryKeyConstraint("shred_id", name=op.f("pk_shred_requests")),
    )
    op.create_index(op.f("ix_shred_requests_state"), "shred_requests", ["state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_shred_requests_state"), table_name="shred_requests")
    op.drop_table("shred_requests")
    op.drop_index(op.f("ix_legal_holds_child_id"), table_name="legal_holds")
    op.drop_table("legal_holds")
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_column("left_on")
        batch_op.drop_column("date_of_birth")
