"""Upload tokens bound to their size and version.

An upload to the local store is taken only while its version is pending, looked up by its
object name (unique: one object belongs to one version). Sizes up to an S3 object's 5 TiB fit
the size column. A sweep keeps the objects of the versions it removed in
``upload_leftovers`` until their upload URLs have expired, deleting them again each time, so
an S3 URL used after its version was swept cannot leave an object behind for good.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.alter_column(
            "ciphertext_size",
            existing_type=sa.Integer(),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )
        batch_op.create_index("ux_record_versions_object_name", ["object_name"], unique=True)
    op.create_table(
        "upload_leftovers",
        sa.Column("object_name", sa.String(length=200), nullable=False),
        sa.Column("upload_id", sa.String(length=1024), nullable=True),
        sa.Column("urls_expire_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("object_name", name=op.f("pk_upload_leftovers")),
    )


def downgrade() -> None:
    op.drop_table("upload_leftovers")
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.drop_index("ux_record_versions_object_name")
        batch_op.alter_column(
            "ciphertext_size",
            existing_type=sa.BigInteger(),
            type_=sa.Integer(),
            existing_nullable=False,
        )
