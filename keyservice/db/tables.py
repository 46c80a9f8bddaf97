"""The key service's tables (SQLAlchemy Core). Migrations in keyservice/migrations mirror them.

Ids are 32 lowercase hex characters (16 random bytes). No table holds a plaintext key: child
keys are wrapped by the root key, record keys by a child key; enrolment codes are stored as
their SHA-256 only.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    true,
)

from keyservice.db.types import UTCDateTime

ID = String(32)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

principals = Table(
    "principals",
    metadata,
    Column("principal_id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("display_name", String(200), nullable=False),
    # Space-separated staff roles; empty for guardians and external recipients.
    Column("roles", String(100), nullable=False, default=""),
    Column("organisation", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", ID, primary_key=True),
    Column("principal_id", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("signing_key", LargeBinary(32), nullable=False),
    Column("receiving_key", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    # bootstrap | first | added | recovered | invited (decisions 0004, 0014)
    Column("origin", String(16), nullable=False, default="first"),
    # Who saw the code this device enrolled with (an added device inherits its parent's);
    # None when the code came from the host. Approvers must be independent of it.
    Column("vouched_by", ID),
    # The second person who approved a recovery or a code that needed approval.
    Column("approved_by", ID),
)

enrolment_codes = Table(
    "enrolment_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("principal_id", ID, ForeignKey("principals.principal_id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
    # None: issued at the host. For "added", the principal's own device that asked for it.
    Column("issued_by", ID),
    Column("issued_device", ID),
    # first | added | recovered | invited
    Column("purpose", String(16), nullable=False, default="first"),
    # An invitation: the share this code was issued with (it expires with the share, at most
    # seven days after it was issued).
    Column("share_id", ID),
)

seen_nonces = Table(
    "seen_nonces",
    metadata,
    Column("device_id", ID, primary_key=True),
    Column("nonce", String(32), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

children = Table(
    "children",
    metadata,
    Column("child_id", ID, primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("room", String(100)),
    Column("created_at", UTCDateTime, nullable=False),
    # For retention (docs/decisions/0019): optional, set by the child's manager/DSL or an admin.
    Column("date_of_birth", Date),
    Column("left_on", Date),
    # Key versions below this one are no longer needed by any wrap and may be destroyed.
    Column("min_decryption_version", Integer),
)

child_keys = Table(
    "child_keys",
    metadata,
    Column("child_id", ID, ForeignKey("children.child_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    # active | decrypt-only | destroyed
    Column("state", String(16), nullable=False),
    Column("wrapped", LargeBinary),
    Column("created_at", UTCDateTime, nullable=False),
    # Which root key provider and version wrapped it (NULL: made before they were recorded).
    Column("root_provider", String(200)),
    Column("root_version", Integer),
)

assignments = Table(
    "assignments",
    metadata,
    Column("assignment_id", ID, primary_key=True),
    Column("staff_id", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    Column("child_id", ID, ForeignKey("children.child_id"), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime),
)

guardianships = Table(
    "guardianships",
    metadata,
    Column("guardianship_id", ID, primary_key=True),
    Column("guardian_id", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    Column("child_id", ID, ForeignKey("children.child_id"), nullable=False, index=True),
    Column("parental_responsibility", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("ended_by", ID),
    Column("end_reason", String(500)),
)

consents = Table(
    "consents",
    metadata,
    Column("consent_id", ID, primary_key=True),
    Column("child_id", ID, ForeignKey("children.child_id"), nullable=False, index=True),
    Column("given_by", ID, ForeignKey("principals.principal_id"), nullable=False),
    Column("recipient_id", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    # Space-separated record categories.
    Column("categories", String(200), nullable=False),
    Column("purpose", String(500), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=False),
    Column("withdrawn_at", UTCDateTime),
    Column("evidence_record_id", ID),
    Column("withdrawn_by", ID),
    Column("withdraw_reason", String(500)),
    # The consent this one corrects (ended when this one takes effect).
    Column("replaces", ID),
)

court_orders = Table(
    "court_orders",
    metadata,
    Column("court_order_id", ID, primary_key=True),
    Column("child_id", ID, ForeignKey("children.child_id"), nullable=False, index=True),
    Column("effect", String(32), nullable=False),
    Column("subject_id", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    Column("categories", String(200), nullable=False),
    Column("reference", String(200), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=False),
    Column("evidence_record_id", ID),
    # Ending an order moves valid_to back to the end; these say who and why.
    Column("ended_at", UTCDateTime),
    Column("ended_by", ID),
    Column("end_reason", String(500)),
    Column("replaces", ID),
    # Whether the child's guardians see the shares made under this order in their disclosure
    # log (an order may say they must not be told).
    Column("guardians_told", Boolean, nullable=False, default=True, server_default=true()),
)

# A change that gives someone read rights, waiting for a second person (decision 0004).
proposals = Table(
    "proposals",
    metadata,
    Column("proposal_id", ID, primary_key=True),
    # assignment.create | guardianship.create | consent.create | court_order.create |
    # court_order.end | admin.create | device.enrol
    Column("action", String(32), nullable=False),
    Column("child_id", ID),
    # Whoever gains read rights (or a device) when it is approved.
    Column("beneficiary_id", ID),
    # Canonical JSON of the request that proposed it, applied as it stands on approval.
    Column("payload", Text, nullable=False),
    Column("proposed_by", ID, nullable=False),
    Column("proposed_device", ID),
    Column("proposed_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # pending | approved | rejected | cancelled
    Column("state", String(16), nullable=False, index=True),
    Column("decided_by", ID),
    Column("decided_device", ID),
    Column("decided_at", UTCDateTime),
    Column("result_id", ID),
    Column("reason", String(500)),
)

# What a person is told about their own account (a recovered device, say).
notifications = Table(
    "notifications",
    metadata,
    Column("notification_id", ID, primary_key=True),
    Column("principal_id", ID, nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    # Canonical JSON of opaque ids.
    Column("detail", Text, nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("category", String(32), nullable=False),
    Column("withheld_from_guardians", Boolean, nullable=False),
    Column("created_by", ID, ForeignKey("principals.principal_id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
)

record_children = Table(
    "record_children",
    metadata,
    Column("record_id", ID, ForeignKey("records.record_id"), primary_key=True),
    Column("child_id", ID, ForeignKey("children.child_id"), primary_key=True, index=True),
)

# The states of a record version.
PENDING = "pending"
COMMITTED = "committed"
DELETED = "deleted"

record_versions = Table(
    "record_versions",
    metadata,
    Column("record_id", ID, ForeignKey("records.record_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    # pending | committed | deleted
    Column("state", String(16), nullable=False),
    Column("object_name", String(200), nullable=False),
    # Set while a multipart upload is open; the commit completes it.
    Column("upload_id", String(1024)),
    Column("ciphertext_size", BigInteger, nullable=False),
    # The committed ciphertext's digest (32 bytes), made by ``ciphertext_digest_alg``:
    # "sha256" for versions committed before migration 0013, "blake3" since (decision 0022).
    Column("ciphertext_sha256", LargeBinary(32)),
    Column("ciphertext_digest_alg", String(16), nullable=False, server_default="sha256"),
    Column("encrypted_metadata", LargeBinary),
    Column("created_by", ID, ForeignKey("principals.principal_id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("committed_at", UTCDateTime),
)
Index("ix_record_versions_pending", record_versions.c.state, record_versions.c.created_at)
# An upload to the local store is taken only while its version is pending, found by its object.
Index("ux_record_versions_object_name", record_versions.c.object_name, unique=True)

# Objects of versions a sweep removed, deleted again by every sweep until their upload URLs
# have expired: a presigned S3 URL cannot be revoked (docs/decisions/0010-upload-bounds.md).
upload_leftovers = Table(
    "upload_leftovers",
    metadata,
    Column("object_name", String(200), primary_key=True),
    Column("upload_id", String(1024)),
    Column("urls_expire_at", UTCDateTime, nullable=False),
)

wrapped_record_keys = Table(
    "wrapped_record_keys",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("child_id", ID, ForeignKey("children.child_id"), primary_key=True),
    Column("child_key_version", Integer, nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
)
# A child rotation's batches and the wrap counts per key version read by this index.
Index(
    "ix_wrapped_record_keys_child_version",
    wrapped_record_keys.c.child_id,
    wrapped_record_keys.c.child_key_version,
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_principal", ID),
    Column("actor_device", ID),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    # Canonical JSON of opaque ids, codes and counts: never names, file names or keys.
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row: the chain's head, locked by every append so instances append one at a time.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

# Which records a release touched, per child: the disclosure view reads this, not the chain.
disclosures = Table(
    "disclosures",
    metadata,
    Column("audit_seq", Integer, primary_key=True, autoincrement=False),
    Column("child_id", ID, primary_key=True, index=True),
    Column("record_id", ID, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("principal_id", ID, nullable=False),
    Column("basis", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # The share a row's disclosure was made through: its creation (the records it lists) or a
    # release through it; None for every other release.
    Column("share_id", ID),
)

# Records made available to one outside recipient on a consent or a disclosing court order
# (docs/decisions/0013-shares.md). Never deleted: a revoked share keeps its row and reason.
shares = Table(
    "shares",
    metadata,
    Column("share_id", ID, primary_key=True),
    Column("recipient_id", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    # consent | court_order, and the consent's or order's id.
    Column("basis", String(16), nullable=False),
    Column("basis_id", ID, nullable=False),
    Column("purpose", String(500), nullable=False),
    Column("created_by", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    Column("created_device", ID),
    Column("created_at", UTCDateTime, nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=False),
    # Downloads allowed per record version; None: no cap.
    Column("download_cap", Integer),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by", ID),
    Column("revoke_reason", String(500)),
    # The recipient is expected to acknowledge receipt by then (None: no deadline).
    Column("ack_due", UTCDateTime),
    # The first release through the share, and the recipient's signed acknowledgement.
    Column("opened_at", UTCDateTime),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_device", ID),
)

# The record versions a share lists, frozen to the versions current when it was made; ``used``
# counts the downloads spent against the share's cap (one conditional UPDATE per release).
share_items = Table(
    "share_items",
    metadata,
    Column("share_id", ID, ForeignKey("shares.share_id"), primary_key=True),
    Column("record_id", ID, primary_key=True, index=True),
    Column("version", Integer, primary_key=True),
    Column("used", Integer, nullable=False, default=0),
)

# Each counted download of a share item, by device: a retry of the same item by the same device
# within the grace window finds its row and does not spend another count.
share_downloads = Table(
    "share_downloads",
    metadata,
    Column("download_id", ID, primary_key=True),
    Column("share_id", ID, nullable=False),
    Column("record_id", ID, nullable=False),
    Column("version", Integer, nullable=False),
    Column("device_id", ID, nullable=False),
    Column("counted_at", UTCDateTime, nullable=False),
)
Index(
    "ix_share_downloads_item_device",
    share_downloads.c.share_id,
    share_downloads.c.record_id,
    share_downloads.c.version,
    share_downloads.c.device_id,
)

# A legal hold on a child: while one is on (lifted_at is None), nothing of the child is shredded.
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("hold_id", ID, primary_key=True),
    Column("child_id", ID, ForeignKey("children.child_id"), nullable=False, index=True),
    Column("reason", String(500), nullable=False),
    Column("set_by", ID, nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    Column("lifted_by", ID),
    Column("lifted_at", UTCDateTime),
    Column("lift_reason", String(500)),
)

# A request to crypto-shred one record or a whole child (docs/decisions/0019): requested by a
# manager or DSL of the child, approved by a second one, carried out once not_before has passed.
shred_requests = Table(
    "shred_requests",
    metadata,
    Column("shred_id", ID, primary_key=True),
    # record | child
    Column("target", String(8), nullable=False),
    Column("record_id", ID),
    # The child shredded whole, or None for a record.
    Column("child_id", ID),
    # Space-separated ids of the children the request is judged against.
    Column("child_ids", String(2000), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("requested_by", ID, nullable=False),
    Column("requested_device", ID),
    Column("requested_at", UTCDateTime, nullable=False),
    # pending | approved | cancelled | done
    Column("state", String(16), nullable=False, index=True),
    Column("approved_by", ID),
    Column("approved_device", ID),
    Column("approved_at", UTCDateTime),
    # Set on approval: approved_at plus the waiting period.
    Column("not_before", UTCDateTime),
    Column("cancelled_by", ID),
    Column("cancelled_at", UTCDateTime),
    Column("cancel_reason", String(500)),
    Column("done_at", UTCDateTime),
    # The signed shred certificate (vault/shred.py): its statement and the service's signature.
    Column("certificate", Text),
    Column("signature", LargeBinary(64)),
)


# Rotation jobs (decision 0017): recorded, resumed after a restart, one running per key
# (``running_key`` is unique while set: ``root`` or ``child:<id>``); an instance holds a job
# while its lease (owner, expiry) lasts and renews it with every batch.
rotation_jobs = Table(
    "rotation_jobs",
    metadata,
    Column("job_id", ID, primary_key=True),
    # root | child | migrate
    Column("kind", String(16), nullable=False),
    # the child of a child rotation; the provider moved from, of a migrate job
    Column("target", String(200)),
    # running | done | failed
    Column("state", String(16), nullable=False, index=True),
    Column("running_key", String(64), unique=True),
    Column("to_version", Integer),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("cursor", String(200)),
    Column("started_by", ID),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("lease_expires", UTCDateTime),
    Column("error", String(500)),
)


# Rooms of a nursery (docs/decisions/0018-rooms-and-imports.md). Staff are attached to a room
# with a role and children join and leave it, each for a window; a member of staff reads a
# child's records while both memberships overlap (keyservice/catalog/facts.py).
rooms = Table(
    "rooms",
    metadata,
    Column("room_id", ID, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

room_staff = Table(
    "room_staff",
    metadata,
    Column("membership_id", ID, primary_key=True),
    Column("room_id", ID, ForeignKey("rooms.room_id"), nullable=False, index=True),
    Column("staff_id", ID, ForeignKey("principals.principal_id"), nullable=False, index=True),
    # educator | manager | dsl, as an assignment's role.
    Column("role", String(16), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime),
)

room_children = Table(
    "room_children",
    metadata,
    Column("membership_id", ID, primary_key=True),
    Column("room_id", ID, ForeignKey("rooms.room_id"), nullable=False, index=True),
    Column("child_id", ID, ForeignKey("children.child_id"), nullable=False, index=True),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime),
)
