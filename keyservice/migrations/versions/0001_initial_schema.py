"""Initial schema: principals, devices, relationships, catalog, keys, audit chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 18:21:54.046693
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_principal", sa.String(length=32), nullable=True),
        sa.Column("actor_device", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "children",
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("room", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("child_id", name=op.f("pk_children")),
    )
    op.create_table(
        "disclosures",
        sa.Column("audit_seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.String(length=32), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "audit_seq", "child_id", "record_id", "version", name=op.f("pk_disclosures")
        ),
    )
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disclosures_child_id"), ["child_id"], unique=False)

    op.create_table(
        "principals",
        sa.Column("principal_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.String(length=100), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("principal_id", name=op.f("pk_principals")),
    )
    op.create_table(
        "seen_nonces",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "nonce", name=op.f("pk_seen_nonces")),
    )
    with op.batch_alter_table("seen_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seen_nonces_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "assignments",
        sa.Column("assignment_id", sa.String(length=32), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_assignments_child_id_children")
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["principals.principal_id"],
            name=op.f("fk_assignments_staff_id_principals"),
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignments_child_id"), ["child_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignments_staff_id"), ["staff_id"], unique=False)

    op.create_table(
        "child_keys",
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_child_keys_child_id_children")
        ),
        sa.PrimaryKeyConstraint("child_id", "version", name=op.f("pk_child_keys")),
    )
    op.create_table(
        "consents",
        sa.Column("consent_id", sa.String(length=32), nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("given_by", sa.String(length=32), nullable=False),
        sa.Column("recipient_id", sa.String(length=32), nullable=False),
        sa.Column("categories", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence_record_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_consents_child_id_children")
        ),
        sa.ForeignKeyConstraint(
            ["given_by"], ["principals.principal_id"], name=op.f("fk_consents_given_by_principals")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["principals.principal_id"],
            name=op.f("fk_consents_recipient_id_principals"),
        ),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_child_id"), ["child_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_consents_recipient_id"), ["recipient_id"], unique=False
        )

    op.create_table(
        "court_orders",
        sa.Column("court_order_id", sa.String(length=32), nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("effect", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("categories", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence_record_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_court_orders_child_id_children")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["principals.principal_id"],
            name=op.f("fk_court_orders_subject_id_principals"),
        ),
        sa.PrimaryKeyConstraint("court_order_id", name=op.f("pk_court_orders")),
    )
    with op.batch_alter_table("court_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_court_orders_child_id"), ["child_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_court_orders_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("principal_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("signing_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("receiving_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.principal_id"],
            name=op.f("fk_devices_principal_id_principals"),
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_principal_id"), ["principal_id"], unique=False)

    op.create_table(
        "enrolment_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.principal_id"],
            name=op.f("fk_enrolment_codes_principal_id_principals"),
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_enrolment_codes")),
    )
    op.create_table(
        "guardianships",
        sa.Column("guardianship_id", sa.String(length=32), nullable=False),
        sa.Column("guardian_id", sa.String(length=32), nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("parental_responsibility", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_guardianships_child_id_children")
        ),
        sa.ForeignKeyConstraint(
            ["guardian_id"],
            ["principals.principal_id"],
            name=op.f("fk_guardianships_guardian_id_principals"),
        ),
        sa.PrimaryKeyConstraint("guardianship_id", name=op.f("pk_guardianships")),
    )
    with op.batch_alter_table("guardianships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guardianships_child_id"), ["child_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_guardianships_guardian_id"), ["guardian_id"], unique=False
        )

    op.create_table(
        "records",
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("withheld_from_guardians", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["principals.principal_id"],
            name=op.f("fk_records_created_by_principals"),
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_records")),
    )
    op.create_table(
        "wrapped_record_keys",
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("child_key_version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.child_id"],
            name=op.f("fk_wrapped_record_keys_child_id_children"),
        ),
        sa.PrimaryKeyConstraint(
            "record_id", "version", "child_id", name=op.f("pk_wrapped_record_keys")
        ),
    )
    op.create_table(
        "record_children",
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_record_children_child_id_children")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.record_id"], name=op.f("fk_record_children_record_id_records")
        ),
        sa.PrimaryKeyConstraint("record_id", "child_id", name=op.f("pk_record_children")),
    )
    with op.batch_alter_table("record_children", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_children_child_id"), ["child_id"], unique=False)

    op.create_table(
        "record_versions",
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("object_name", sa.String(length=200), nullable=False),
        sa.Column("upload_id", sa.String(length=1024), nullable=True),
        sa.Column("ciphertext_size", sa.Integer(), nullable=False),
        sa.Column("ciphertext_sha256", sa.LargeBinary(length=32), nullable=True),
        sa.Column("encrypted_metadata", sa.LargeBinary(), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["principals.principal_id"],
            name=op.f("fk_record_versions_created_by_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.record_id"], name=op.f("fk_record_versions_record_id_records")
        ),
        sa.PrimaryKeyConstraint("record_id", "version", name=op.f("pk_record_versions")),
    )
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.create_index("ix_record_versions_pending", ["state", "created_at"], unique=False)

    # The audit chain starts from a head of sequence 0 and the all-zero hash (docs/AUDIT.md).
    op.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)").bindparams(h="0" * 64)
    )


def downgrade() -> None:
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_record_versions_pending")

    op.drop_table("record_versions")
    with op.batch_alter_table("record_children", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_children_child_id"))

    op.drop_table("record_children")
    op.drop_table("wrapped_record_keys")
    op.drop_table("records")
    with op.batch_alter_table("guardianships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guardianships_guardian_id"))
        batch_op.drop_index(batch_op.f("ix_guardianships_child_id"))

    op.drop_table("guardianships")
    op.drop_table("enrolment_codes")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_principal_id"))

    op.drop_table("devices")
    with op.batch_alter_table("court_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_court_orders_subject_id"))
        batch_op.drop_index(batch_op.f("ix_court_orders_child_id"))

    op.drop_table("court_orders")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_recipient_id"))
        batch_op.drop_index(batch_op.f("ix_consents_child_id"))

    op.drop_table("consents")
    op.drop_table("child_keys")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignments_staff_id"))
        batch_op.drop_index(batch_op.f("ix_assignments_child_id"))

    op.drop_table("assignments")
    with op.batch_alter_table("seen_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_nonces_expires_at"))

    op.drop_table("seen_nonces")
    op.drop_table("principals")
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disclosures_child_id"))

    op.drop_table("disclosures")
    op.drop_table("children")
    op.drop_table("audit_head")
    op.drop_table("audit_entries")
    op.drop_table("audit_checkpoints")
