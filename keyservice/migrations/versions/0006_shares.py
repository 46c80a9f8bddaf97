"""Shares to outside recipients: the shares, their frozen record versions, counted downloads,
and the disclosure log rows a share's creation writes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.String(length=32)
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("share_id", ID, nullable=False),
        sa.Column("recipient_id", ID, nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("basis_id", ID, nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("created_by", ID, nullable=False),
        sa.Column("created_device", ID, nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("valid_from", AT, nullable=False),
        sa.Column("valid_to", AT, nullable=False),
        sa.Column("download_cap", sa.Integer(), nullable=True),
        sa.Column("revoked_at", AT, nullable=True),
        sa.Column("revoked_by", ID, nullable=True),
        sa.Column("revoke_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["principals.principal_id"],
            name=op.f("fk_shares_recipient_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["principals.principal_id"],
            name=op.f("fk_shares_created_by_principals"),
        ),
        sa.PrimaryKeyConstraint("share_id", name=op.f("pk_shares")),
    )
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shares_recipient_id"), ["recipient_id"])
        batch_op.create_index(batch_op.f("ix_shares_created_by"), ["created_by"])
    op.create_table(
        "share_items",
        sa.Column("share_id", ID, nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_id"], ["shares.share_id"], name=op.f("fk_share_items_share_id_shares")
        ),
        sa.PrimaryKeyConstraint("share_id", "record_id", "version", name=op.f("pk_share_items")),
    )
    with op.batch_alter_table("share_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_share_items_record_id"), ["record_id"])
    op.create_table(
        "share_downloads",
        sa.Column("download_id", ID, nullable=False),
        sa.Column("share_id", ID, nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("device_id", ID, nullable=False),
        sa.Column("counted_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("download_id", name=op.f("pk_share_downloads")),
    )
    op.create_index(
        "ix_share_downloads_item_device",
        "share_downloads",
        ["share_id", "record_id", "version", "device_id"],
    )
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share_id", ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.drop_column("share_id")
    op.drop_index("ix_share_downloads_item_device", table_name="share_downloads")
    op.drop_table("share_downloads")
    with op.batch_alter_table("share_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_share_items_record_id"))
    op.drop_table("share_items")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shares_created_by"))
        batch_op.drop_index(batch_op.f("ix_shares_recipient_id"))
    op.drop_table("shares")
