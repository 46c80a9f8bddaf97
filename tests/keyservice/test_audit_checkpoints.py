"""Entries a database-only attacker cannot recompute, and checkpoints kept outside the database.

The attacker here can write the database and nothing else: they rewrite an entry and every
later hash with plain SHA-256 (all that is needed before entries were keyed), or cut the newest
entries off, move the head back and delete the database's checkpoints. ``audit verify`` must
name the damage anyway: the entries' MACs need the service's key, and the timed checkpoints
the service also writes to the blob store are out of reach. Real servers, both flavours.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select, text

from keyservice.audit import offsite
from keyservice.audit.chain import canonical_json, format_time
from keyservice.audit.checkpoints import Checkpoint
from keyservice.audit.mac import AuditMac
from keyservice.db.tables import audit_entries
from keyservice.ids import new_id
from tests.keyservice.conftest import database
from tests.keyservice.helpers import Device, bootstrap_admin, release, verify_audit
from tests.servers import (
    KeyService,
    KeyServiceFactory,
    S3Server,
    ServerStartError,
    run_keyservice_command,
)
from vault.storage import LocalDirectoryStore

pytestmark = pytest.mark.integration

FLAVOURS = ["embedded", "production"]
# The dedicated services' CAREVAULT_CHECKPOINT_SECONDS.
INTERVAL_S = 1
# How much later than one interval a checkpoint may appear on a machine that several test
# runs share.
SLACK_S = 10.0


def _timed(factory: KeyServiceFactory, flavour: str, **extra_env: str) -> KeyService:
    return factory(
        flavour=flavour, extra_env={"CAREVAULT_CHECKPOINT_SECONDS": str(INTERVAL_S), **extra_env}
    )


@pytest.fixture(params=FLAVOURS)
def dedicated(request: pytest.FixtureRequest, keyservice_factory: KeyServiceFactory) -> KeyService:
    """A service of its own, whose audit a test may tamper with."""
    return keyservice_factory(flavour=request.param)


@pytest.fixture(params=FLAVOURS)
def timed(request: pytest.FixtureRequest, keyservice_factory: KeyServiceFactory) -> KeyService:
    """A service of its own that signs a checkpoint every ``INTERVAL_S`` seconds."""
    return _timed(keyservice_factory, request.param)


def _entries(admin: Device, count: int) -> None:
    """``count`` new audit entries: key releases the admin is refused, one entry each."""
    for _ in range(count):
        release(admin, [(new_id(), 1)])


@contextmanager
def _database(service: KeyService) -> Iterator[Engine]:
    """A connection to a dedicated service's database, disposed of after."""
    engine = database(service)
    try:
        yield engine
    finally:
        engine.dispose()


def _head(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT seq FROM audit_head")).scalar_one())


def _checkpointed(engine: Engine, seq: int) -> bool:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM audit_checkpoints WHERE seq = :s"), {"s": seq}
        ).scalar_one()
    return bool(found)


def _wait_for_checkpoint(engine: Engine, seq: int) -> float:
    """Seconds until the database holds a checkpoint of entry ``seq`` (the service writes the
    blob store's copy first); fails after one interval and the slack."""
    started = time.monotonic()
    while not _checkpointed(engine, seq):
        elapsed = time.monotonic() - started
        assert elapsed < INTERVAL_S + SLACK_S, f"no checkpoint of entry {seq} after {elapsed} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _plain_hash(row: dict[str, object], prev_hash: str) -> str:
    """The unkeyed SHA-256 chain hash: what anyone who can read the schema can compute."""
    at = row["at"]
    assert hasattr(at, "strftime")
    encoded = canonical_json(
        {
            "seq": row["seq"],
            "at": format_time(at),
            "actor_principal": row["actor_principal"],
            "actor_device": row["actor_device"],
            "action": row["action"],
            "outcome": row["outcome"],
            "detail": row["detail"],
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def test_a_rewritten_entry_is_named_though_every_later_hash_was_recomputed(
    dedicated: KeyService,
) -> None:
    """A refusal turned into a grant, the chain re-linked after it: only a key the database
    does not hold tells the forgery apart."""
    _entries(bootstrap_admin(dedicated), 12)
    with _database(dedicated) as engine:
        with engine.begin() as connection:
            rows = [
                dict(r._mapping)
                for r in connection.execute(select(audit_entries).order_by(audit_entries.c.seq))
            ]
            forged = next(r for r in rows[len(rows) // 2 :] if r["action"] == "keys.release")
            # A refusal of a made-up id (audited as a count and a digest) becomes a grant.
            assert '"unknown"' in str(forged["detail"])
            forged["detail"] = canonical_json({"items": [[new_id(), 1, "granted", "consent"]]})
            prev_hash = str(forged["prev_hash"])
            for row in rows[rows.index(forged) :]:
                row["prev_hash"] = prev_hash
                row["hash"] = prev_hash = _plain_hash(row, prev_hash)
                connection.execute(
                    text(
                        "UPDATE audit_entries SET detail = :detail, prev_hash = :prev_hash, "
                        "hash = :hash WHERE seq = :seq"
                    ),
                    row,
                )
            connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev_hash})
        output = verify_audit(dedicated, exit_code=1)
        assert f"entry {forged['seq']}" in output


def test_a_checkpoint_is_signed_on_time_in_the_database_and_the_blob_store(
    timed: KeyService,
) -> None:
    _entries(bootstrap_admin(timed), 3)
    with _database(timed) as engine:
        head = _head(engine)
        assert _wait_for_checkpoint(engine, head) < INTERVAL_S + SLACK_S
        # The database's copies gone, the blob store's still counts.
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_checkpoints"))
        output = verify_audit(timed, exit_code=0)
        assert f"0 entries after the last verified checkpoint at seq {head}" in output
        assert "blob store" in output


def test_entries_cut_off_the_end_are_named_by_the_blob_store_checkpoint(
    timed: KeyService,
) -> None:
    """The finding's attack: the newest 20 entries deleted, the head moved back to the entry
    before them and every checkpoint in the database deleted, while the service runs."""
    _entries(bootstrap_admin(timed), 30)
    with _database(timed) as engine:
        head = _head(engine)
        _wait_for_checkpoint(engine, head)
        kept = head - 20
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_entries WHERE seq > :s"), {"s": kept})
            new_head = connection.execute(
                text("SELECT hash FROM audit_entries WHERE seq = :s"), {"s": kept}
            ).scalar_one()
            connection.execute(
                text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": kept, "h": new_head}
            )
            connection.execute(text("DELETE FROM audit_checkpoints"))
        output = verify_audit(timed, exit_code=1)
        assert f"entry {kept + 1}" in output
        assert "missing" in output


def test_verify_counts_the_entries_after_the_last_verified_checkpoint(
    dedicated: KeyService,
) -> None:
    admin = bootstrap_admin(dedicated)
    signed = run_keyservice_command(dedicated.env, "audit", "checkpoint").stdout
    seq = int(signed.split("seq ")[1].split()[0])
    _entries(admin, 4)
    output = verify_audit(dedicated, exit_code=0)
    assert f"4 entries after the last verified checkpoint at seq {seq}" in output


def test_several_instances_checkpoint_one_chain_harmlessly(
    timed: KeyService, keyservice_factory: KeyServiceFactory
) -> None:
    """Two instances on one database and store, each with its timer: entries through both,
    checkpoints by both, and the chain and its checkpoints still verify."""
    first = timed
    second = keyservice_factory.start(first.env)
    admin = bootstrap_admin(first)
    via_second = dataclasses.replace(admin, base_url=second.base_url)
    for _ in range(5):
        _entries(admin, 2)
        _entries(via_second, 2)
        time.sleep(INTERVAL_S / 2)
    with _database(first) as engine:
        _wait_for_checkpoint(engine, _head(engine))
        time.sleep(2 * INTERVAL_S)  # both timers have run at least once more
        output = verify_audit(first, exit_code=0)
        assert "0 entries after the last verified checkpoint" in output
        for service in (first, second):
            assert "checkpoint" not in service.log_tail(), service.log_tail()


def test_a_clean_stop_checkpoints_the_head(dedicated: KeyService) -> None:
    # This service's checkpoint timer is far off: only its stop checkpoints the head.
    _entries(bootstrap_admin(dedicated), 2)
    with _database(dedicated) as engine:
        head = _head(engine)
        assert not _checkpointed(engine, head)
        dedicated.stop()
        assert _checkpointed(engine, head)


def test_a_forged_head_is_not_signed(keyservice_factory: KeyServiceFactory) -> None:
    """A head the database was made to claim, with no entry carrying its MAC behind it, is
    never signed: the timer's checkpoints only vouch for entries the service wrote."""
    service = _timed(keyservice_factory, "embedded")
    _entries(bootstrap_admin(service), 2)
    with _database(service) as engine:
        head = _head(engine)
        _wait_for_checkpoint(engine, head)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE audit_head SET seq = :s, hash = :h"),
                {"s": head + 5, "h": secrets.token_hex(32)},
            )
        time.sleep(3 * INTERVAL_S)
        assert not _checkpointed(engine, head + 5)
        assert "does not verify" in service.log_tail()


def test_a_service_that_lost_its_audit_mac_key_refuses_to_start(
    keyservice_factory: KeyServiceFactory,
) -> None:
    """Restored without its MAC key file, the service would chain new entries under a new key
    onto entries it cannot check; it refuses to start, and host commands refuse to append,
    saying what to restore."""
    service = keyservice_factory(flavour="embedded")
    bootstrap_admin(service)
    service.stop()
    (Path(service.env["CAREVAULT_DATA_DIR"]) / "audit-mac.key").unlink()
    with pytest.raises(ServerStartError) as refused:
        keyservice_factory.start(service.env, port=service.port)
    assert "CAREVAULT_AUDIT_MAC_KEY_FILE" in str(refused.value)
    with _database(service) as engine:
        before = _head(engine)
        appended = run_keyservice_command(service.env, "bootstrap", "--force-new-code", check=False)
        assert appended.returncode == 1
        assert "CAREVAULT_AUDIT_MAC_KEY_FILE" in appended.stderr
        assert _head(engine) == before


def test_a_chain_from_before_entries_were_keyed_is_not_accepted(
    keyservice_factory: KeyServiceFactory,
) -> None:
    """A database whose entries carry plain SHA-256 hashes (as written before decision 0009):
    the service will not continue it and ``audit verify`` names its first entry."""
    service = keyservice_factory(flavour="embedded")
    _entries(bootstrap_admin(service), 3)
    service.stop()
    with _database(service) as engine, engine.begin() as connection:
        rows = connection.execute(select(audit_entries).order_by(audit_entries.c.seq)).all()
        prev_hash = "0" * 64
        for found in rows:
            plain = _plain_hash(dict(found._mapping), prev_hash)
            connection.execute(
                text("UPDATE audit_entries SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev_hash, "h": plain, "s": found.seq},
            )
            prev_hash = plain
        connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev_hash})
        connection.execute(text("DELETE FROM audit_checkpoints"))
    output = verify_audit(service, exit_code=1)
    assert "entry 1:" in output
    with pytest.raises(ServerStartError) as refused:
        keyservice_factory.start(service.env, port=service.port)
    assert "before audit entries were keyed" in str(refused.value)


def test_checkpoints_land_in_an_object_locked_bucket(
    keyservice_factory: KeyServiceFactory, s3_server: S3Server
) -> None:
    """A bucket of their own with S3 Object Lock (compliance mode, default retention): the
    checkpoints written there cannot be deleted, even with the service's credentials."""
    bucket = f"carevault-checkpoints-{secrets.token_hex(6)}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    service = _timed(keyservice_factory, "production", CAREVAULT_CHECKPOINT_STORE=f"s3://{bucket}")
    _entries(bootstrap_admin(service), 3)
    with _database(service) as engine:
        head = _head(engine)
        _wait_for_checkpoint(engine, head)
        versions = s3.list_object_versions(Bucket=bucket)["Versions"]
        assert versions
        for version in versions:
            locked = s3.head_object(Bucket=bucket, Key=version["Key"])
            assert locked["ObjectLockMode"] == "COMPLIANCE"
            with pytest.raises(ClientError):
                s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        output = verify_audit(service, exit_code=0)
        assert f"0 entries after the last verified checkpoint at seq {head}" in output


def test_a_checkpoint_planted_in_the_blob_store_is_named(
    keyservice_factory: KeyServiceFactory,
) -> None:
    """Someone who can write the store but has no service key plants a checkpoint claiming a
    longer chain: its signature gives it away."""
    service = keyservice_factory(flavour="embedded")
    bootstrap_admin(service)
    run_keyservice_command(service.env, "audit", "checkpoint")
    data_dir = Path(service.env["CAREVAULT_DATA_DIR"])
    mac = AuditMac((data_dir / "audit-mac.key").read_bytes())
    with _database(service) as engine:
        claimed = _head(engine) + 10
    planted = Checkpoint.sign(Ed25519PrivateKey.generate(), seq=claimed, digest="ab" * 32)
    store = LocalDirectoryStore(data_dir / "blobs", base_url=service.base_url, token_key=b"k" * 32)
    offsite.put(store, mac, planted)
    output = verify_audit(service, exit_code=1)
    assert f"entry {claimed}" in output
    assert "invalid signature" in output
