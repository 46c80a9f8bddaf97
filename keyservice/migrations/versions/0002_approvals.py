"""Two-person approval of read-giving changes; device provenance; ending orders and consents.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(length=32)


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("proposal_id", ID, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("child_id", ID, nullable=True),
        sa.Column("beneficiary_id", ID, nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("proposed_by", ID, nullable=False),
        sa.Column("proposed_device", ID, nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", ID, nullable=True),
        sa.Column("decided_device", ID, nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result_id", ID, nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_proposals")),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposals_state"), ["state"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("notification_id", ID, nullable=False),
        sa.Column("principal_id", ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notifications_principal_id"), ["principal_id"], unique=False
        )
    with op.batch_alter_table("enrolment_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issued_by", ID, nullable=True))
        batch_op.add_column(sa.Column("issued_device", ID, nullable=True))
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="first")
        )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="first")
        )
        batch_op.add_column(sa.Column("vouched_by", ID, nullable=True))
        batch_op.add_column(sa.Column("approved_by", ID, nullable=True))
    with op.batch_alter_table("guardianships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_by", ID, nullable=True))
        batch_op.add_column(sa.Column("end_reason", sa.String(length=500), nullable=True))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_by", ID, nullable=True))
        batch_op.add_column(sa.Column("withdraw_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("replaces", ID, nullable=True))
    with op.batch_alter_table("court_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("ended_by", ID, nullable=True))
        batch_op.add_column(sa.Column("end_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("replaces", ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("court_orders", schema=None) as batch_op:
        for column in ("replaces", "end_reason", "ended_by", "ended_at"):
            batch_op.drop_column(column)
    with op.batch_alter_table("consents", schema=None) as batch_op:
        for column in ("replaces", "withdraw_reason", "withdrawn_by"):
            batch_op.drop_column(column)
    with op.batch_alter_table("guardianships", schema=None) as batch_op:
        for column in ("end_reason", "ended_by"):
            batch_op.drop_column(column)
    with op.batch_alter_table("devices", schema=None) as batch_op:
        for column in ("approved_by", "vouched_by", "origin"):
            batch_op.drop_column(column)
    with op.batch_alter_table("enrolment_codes", schema=None) as batch_op:
        for column in ("purpose", "issued_device", "issued_by"):
            batch_op.drop_column(column)
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_principal_id"))
    op.drop_table("notifications")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proposals_state"))
    op.drop_table("proposals")
