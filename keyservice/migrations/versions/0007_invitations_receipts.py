"""Invitations, receipts and what guardians are told (issue 14, parts 3-5): an enrolment code
bound to a share; a share's first opening, acknowledgement and acknowledgement deadline; a court
order's say over whether guardians see the shares made under it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.String(length=32)
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("enrolment_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share_id", ID, nullable=True))
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ack_due", AT, nullable=True))
        batch_op.add_column(sa.Column("opened_at", AT, nullable=True))
        batch_op.add_column(sa.Column("acknowledged_at", AT, nullable=True))
        batch_op.add_column(sa.Column("acknowledged_device", ID, nullable=True))
    with op.batch_alter_table("court_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("guardians_told", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("court_orders", schema=None) as batch_op:
        batch_op.drop_column("guardians_told")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_column("acknowledged_device")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("opened_at")
        batch_op.drop_column("ack_due")
    with op.batch_alter_table("enrolment_codes", schema=None) as batch_op:
        batch_op.drop_column("share_id")
