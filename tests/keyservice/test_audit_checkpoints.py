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
from tests.keyservice.helpers import Device, bootstrap_admin, release
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


def _entries(admin: Device, count: int) -> None:
    """``count`` new audit entries: key releases the admin is refused, one entry each."""
    for _ in range(count):
        release(admin, [(new_id(), 1)])


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


def _verify(service: KeyService) -> tuple[int, str]:
    result = run_keyservice_command(service.env, "audit", "verify", check=False)
    return result.returncode, result.stdout + result.stderr


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


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_rewritten_entry_is_named_though_every_later_hash_was_recomputed(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    """A refusal turned into a grant, the chain re-linked after it: only a key the database
    does not hold tells the forgery apart."""
    service = keyservice_factory(flavour=flavour)
    admin = bootstrap_admin(service)
    _entries(admin, 12)
    engine = database(service)
    try:
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
        code, output = _verify(service)
        assert code == 1, output
        assert f"entry {forged['seq']}" in output
    finally:
        engine.dispose()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_checkpoint_is_signed_on_time_in_the_database_and_the_blob_store(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    service = _timed(keyservice_factory, flavour)
    admin = bootstrap_admin(service)
    _entries(admin, 3)
    engine = database(service)
    try:
        head = _head(engine)
        assert _wait_for_checkpoint(engine, head) < INTERVAL_S + SLACK_S
        # The database's copies gone, the blob store's still counts.
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_checkpoints"))
        code, output = _verify(service)
        assert code == 0, output
        assert f"0 entries after the last verified checkpoint at seq {head}" in output
        assert "blob store" in output
    finally:
        engine.dispose()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_entries_cut_off_the_end_are_named_by_the_blob_store_checkpoint(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    """The finding's attack: the newest 20 entries deleted, the head moved back to the entry
    before them and every checkpoint in the database deleted, while the service runs."""
    service = _timed(keyservice_factory, flavour)
    admin = bootstrap_admin(service)
    _entries(admin, 30)
    engine = database(service)
    try:
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
        code, output = _verify(service)
        assert code == 1, output
        assert f"entry {kept + 1}" in output
        assert "missing" in output
    finally:
        engine.dispose()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_verify_counts_the_entries_after_the_last_verified_checkpoint(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    service = keyservice_factory(flavour=flavour)
    admin = bootstrap_admin(service)
    signed = run_keyservice_command(service.env, "audit", "checkpoint").stdout
    seq = int(signed.split("seq ")[1].split()[0])
    _entries(admin, 4)
    code, output = _verify(service)
    assert code == 0, output
    assert f"4 entries after the last verified checkpoint at seq {seq}" in output


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_several_instances_checkpoint_one_chain_harmlessly(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    """Two instances on one database and store, each with its timer: entries through both,
    checkpoints by both, and the chain and its checkpoints still verify."""
    first = _timed(keyservice_factory, flavour)
    second = keyservice_factory.start(first.env)
    admin = bootstrap_admin(first)
    via_second = dataclasses.replace(admin, base_url=second.base_url)
    for _ in range(5):
        _entries(admin, 2)
        _entries(via_second, 2)
        time.sleep(INTERVAL_S / 2)
    engine = database(first)
    try:
        _wait_for_checkpoint(engine, _head(engine))
        time.sleep(2 * INTERVAL_S)  # both timers have run at least once more
        code, output = _verify(first)
        assert code == 0, output
        assert "0 entries after the last verified checkpoint" in output
        for service in (first, second):
            assert "checkpoint" not in service.log_tail(), service.log_tail()
    finally:
        engine.dispose()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_clean_stop_checkpoints_the_head(
    flavour: str, keyservice_factory: KeyServiceFactory
) -> None:
    service = keyservice_factory(flavour=flavour)  # the timer's interval is far off
    admin = bootstrap_admin(service)
    _entries(admin, 2)
    engine = database(service)
    try:
        head = _head(engine)
        assert not _checkpointed(engine, head)
        service.stop()
        assert _checkpointed(engine, head)
    finally:
        engine.dispose()


def test_a_forged_head_is_not_signed(keyservice_factory: KeyServiceFactory) -> None:
    """A head the database was made to claim, with no entry carrying its MAC behind it, is
    never signed: the timer's checkpoints only vouch for entries the service wrote."""
    service = _timed(keyservice_factory, "embedded")
    admin = bootstrap_admin(service)
    _entries(admin, 2)
    engine = database(service)
    try:
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
    finally:
        engine.dispose()


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
    engine = database(service)
    try:
        before = _head(engine)
        appended = run_keyservice_command(service.env, "bootstrap", "--force-new-code", check=False)
        assert appended.returncode == 1
        assert "CAREVAULT_AUDIT_MAC_KEY_FILE" in appended.stderr
        assert _head(engine) == before
    finally:
        engine.dispose()


def test_a_chain_from_before_entries_were_keyed_is_not_accepted(
    keyservice_factory: KeyServiceFactory,
) -> None:
    """A database whose entries carry plain SHA-256 hashes (as written before decision 0009):
    the service will not continue it and ``audit verify`` names its first entry."""
    service = keyservice_factory(flavour="embedded")
    admin = bootstrap_admin(service)
    _entries(admin, 3)
    service.stop()
    engine = database(service)
    try:
        with engine.begin() as connection:
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
    finally:
        engine.dispose()
    code, output = _verify(service)
    assert code == 1, output
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
    admin = bootstrap_admin(service)
    _entries(admin, 3)
    engine = database(service)
    try:
        head = _head(engine)
        _wait_for_checkpoint(engine, head)
        versions = s3.list_object_versions(Bucket=bucket)["Versions"]
        assert versions
        for version in versions:
            locked = s3.head_object(Bucket=bucket, Key=version["Key"])
            assert locked["ObjectLockMode"] == "COMPLIANCE"
            with pytest.raises(ClientError):
                s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        code, output = _verify(service)
        assert code == 0, output
        assert f"0 entries after the last verified checkpoint at seq {head}" in output
    finally:
        engine.dispose()


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
    engine = database(service)
    try:
        claimed = _head(engine) + 10
    finally:
        engine.dispose()
    planted = Checkpoint.sign(Ed25519PrivateKey.generate(), seq=claimed, digest="ab" * 32)
    store = LocalDirectoryStore(data_dir / "blobs", base_url=service.base_url, token_key=b"k" * 32)
    offsite.put(store, mac, planted)
    code, output = _verify(service)
    assert code == 1, output
    assert f"entry {claimed}" in output
    assert "invalid signature" in output
