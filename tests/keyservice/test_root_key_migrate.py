"""``carevault-keyservice root-key migrate --to kms:…|pkcs11:…`` (issue 15, part 3): a running
deployment moves from the local key file to a KMS key (moto over HTTP) or to a key in an HSM
(a SoftHSM2 token) without a moment when a record cannot be released. Refusals first."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import create_engine, select

from keyservice.db.tables import child_keys
from tests.keyservice.helpers import assigned_staff, bootstrap_admin, put_record, release
from tests.servers import KeyServiceFactory, S3Server, SoftHsm, run_keyservice_command

pytestmark = pytest.mark.integration


def test_migrate_refuses_without_both_providers_set(
    keyservice_factory: KeyServiceFactory, s3_server: S3Server
) -> None:
    service = keyservice_factory(flavour="embedded")
    key_id = s3_server.new_kms_key()
    alone = run_keyservice_command(
        service.env, "root-key", "migrate", "--to", f"kms:{key_id}", check=False
    )
    assert alone.returncode == 1
    assert "CAREVAULT_ROOT_KEY_PREVIOUS" in alone.stderr
    both = {
        **service.env,
        **s3_server.kms_env(key_id),
        "CAREVAULT_ROOT_KEY_PREVIOUS": service.env["CAREVAULT_ROOT_KEY"],
    }
    elsewhere = run_keyservice_command(
        both, "root-key", "migrate", "--to", f"kms:{s3_server.new_kms_key()}", check=False
    )
    assert elsewhere.returncode == 1
    assert "CAREVAULT_ROOT_KEY=kms:" in elsewhere.stderr


def test_a_deployment_moves_from_the_file_to_a_kms_while_it_serves(
    keyservice_factory: KeyServiceFactory, s3_server: S3Server
) -> None:
    key_id = s3_server.new_kms_key()
    _moves_from_the_file(
        keyservice_factory,
        to=f"kms:{key_id}",
        identity=f"kms:{key_id}",
        env=s3_server.kms_env(key_id),
    )


def test_a_deployment_moves_from_the_file_to_a_pkcs11_token_while_it_serves(
    keyservice_factory: KeyServiceFactory, softhsm: SoftHsm
) -> None:
    label = f"carevault-root-{secrets.token_hex(4)}"
    softhsm.add_key(label)
    env = softhsm.env()
    del env["CAREVAULT_ROOT_KEY"]
    _moves_from_the_file(
        keyservice_factory,
        to=f"pkcs11:token={softhsm.token};object={label}",
        identity=f"pkcs11:{softhsm.token}/{label}",
        env=env,
    )


def _moves_from_the_file(
    keyservice_factory: KeyServiceFactory, *, to: str, identity: str, env: dict[str, str]
) -> None:
    """Steps 1 to 4 of decision 0017's move, with releases of a record made before and one
    made during the move, each opening after every step."""
    service = keyservice_factory(flavour="embedded")
    file_key = service.env["CAREVAULT_ROOT_KEY"]
    admin = bootstrap_admin(service)
    educator, child = assigned_staff(service, admin)
    old = put_record(educator, child_ids=[child])

    # Step 1, instance by instance: both providers open, the file still wraps.
    both_file_first = {
        **service.env,
        **env,
        "CAREVAULT_ROOT_KEY": file_key,
        "CAREVAULT_ROOT_KEY_PREVIOUS": to,
    }
    service.stop()
    service = keyservice_factory.start(both_file_first, port=service.port)
    response, results = release(educator, [(old.record_id, 1)])
    assert educator.open_key(response, results[(old.record_id, 1)]) == old.record_key

    # Step 2, instance by instance: the new provider wraps, the file still opens its wraps.
    moving = {**both_file_first, "CAREVAULT_ROOT_KEY": to, "CAREVAULT_ROOT_KEY_PREVIOUS": file_key}
    service.stop()
    service = keyservice_factory.start(moving, port=service.port)
    educator_two, newer_child = assigned_staff(service, admin)
    newer = put_record(educator_two, child_ids=[newer_child])
    response, results = release(educator, [(old.record_id, 1)])
    assert educator.open_key(response, results[(old.record_id, 1)]) == old.record_key
    before = run_keyservice_command(moving, "root-key", "status").stdout
    assert f"{identity}: " in before
    assert "file: " in before or "unrecorded: " in before

    migrated = run_keyservice_command(moving, "root-key", "migrate", "--to", to)
    assert "rewrapped" in migrated.stdout
    assert "0 child key versions still need the previous provider" in migrated.stdout
    assert "CAREVAULT_ROOT_KEY_PREVIOUS can be dropped" in migrated.stdout
    engine = create_engine(moving["CAREVAULT_DATABASE_URL"])
    with engine.connect() as connection:
        providers = set(
            connection.execute(
                select(child_keys.c.root_provider).where(child_keys.c.state != "destroyed")
            ).scalars()
        )
    engine.dispose()
    assert providers == {identity}
    again = run_keyservice_command(moving, "root-key", "migrate", "--to", to)
    assert "rewrapped 0 child key versions" in again.stdout

    # The previous provider dropped: everything opens with the new one alone.
    alone = {**moving}
    del alone["CAREVAULT_ROOT_KEY_PREVIOUS"]
    service.stop()
    service = keyservice_factory.start(alone, port=service.port)
    response, results = release(educator, [(old.record_id, 1)])
    assert educator.open_key(response, results[(old.record_id, 1)]) == old.record_key
    response, results = release(educator_two, [(newer.record_id, 1)])
    assert educator_two.open_key(response, results[(newer.record_id, 1)]) == newer.record_key
    service.stop()
