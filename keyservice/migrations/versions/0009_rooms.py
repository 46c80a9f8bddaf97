"""Rooms (issue 15, part 4): rooms, staff attached to a room with a role, children joining
and leaving rooms, each membership for a window.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.String(length=32)
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("room_id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_rooms")),
        sa.UniqueConstraint("name", name=op.f("uq_rooms_name")),
    )
    op.create_table(
        "room_staff",
        sa.Column("membership_id", ID, nullable=False),
        sa.Column("room_id", ID, nullable=False),
        sa.Column("staff_id", ID, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("valid_from", AT, nullable=False),
        sa.Column("valid_to", AT, nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.room_id"], name=op.f("fk_room_staff_room_id_rooms")
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["principals.principal_id"],
            name=op.f("fk_room_staff_staff_id_principals"),
        ),
        sa.PrimaryKeyConstraint("membership_id", name=op.f("pk_room_staff")),
    )
    op.create_index(op.f("ix_room_staff_room_id"), "room_staff", ["room_id"])
    op.create_index(op.f("ix_room_staff_staff_id"), "room_staff", ["staff_id"])
    op.create_table(
        "room_children",
        sa.Column("membership_id", ID, nullable=False),
        sa.Column("room_id", ID, nullable=False),
        sa.Column("child_id", ID, nullable=False),
        sa.Column("valid_from", AT, nullable=False),
        sa.Column("valid_to", AT, nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.room_id"], name=op.f("fk_room_children_room_id_rooms")
        ),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.child_id"],
            name=op.f("fk_room_children_child_id_children"),
        ),
        sa.PrimaryKeyConstraint("membership_id", name=op.f("pk_room_children")),
    )
    op.create_index(op.f("ix_room_children_room_id"), "room_children", ["room_id"])
    op.create_index(op.f("ix_room_children_child_id"), "room_children", ["child_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_room_children_child_id"), table_name="room_children")
    op.drop_index(op.f("ix_room_children_room_id"), table_name="room_children")
    op.drop_table("room_children")
    op.drop_index(op.f("ix_room_staff_staff_id"), table_name="room_staff")
    op.drop_index(op.f("ix_room_staff_room_id"), table_name="room_staff")
    op.drop_table("room_staff")
    op.drop_table("rooms")
