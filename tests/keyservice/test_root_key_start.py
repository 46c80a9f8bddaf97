"""The key service on each root key provider, through the real service start and host commands.

A value of CAREVAULT_ROOT_KEY that names no provider, a KMS that cannot be reached, a missing
or disabled KMS key, a token without the key or a wrong PIN: the service refuses to start and
says so naming the setting. With a KMS key (moto, over HTTP) or a SoftHSM2 token the service
releases keys, and ``rotate-root`` rotates the provider's key and rewraps every child key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.keyservice.helpers import (
    assigned_staff,
    bootstrap_admin,
    put_record,
    release,
)
from tests.servers import (
    KeyService,
    KeyServiceFactory,
    S3Server,
    ServerStartError,
    SoftHsm,
    free_port,
    make_temp_dir,
    run_keyservice_command,
)

pytestmark = pytest.mark.integration


def _bad_value(s3: S3Server, hsm: SoftHsm) -> dict[str, str]:
    return {"CAREVAULT_ROOT_KEY": "vault:transit/carevault"}


def _unreachable_kms(s3: S3Server, hsm: SoftHsm) -> dict[str, str]:
    return {
        **s3.kms_env(s3.new_kms_key()),
        "CAREVAULT_KMS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }


def _missing_kms_key(s3: S3Server, hsm: SoftHsm) -> dict[str, str]:
    return s3.kms_env("11111111-2222-3333-4444-555555555555")


def _disabled_kms_key(s3: S3Server, hsm: SoftHsm) -> dict[str, str]:
    key_id = s3.new_kms_key()
    s3.kms_client().disable_key(KeyId=key_id)
    return s3.kms_env(key_id)


def _missing_hsm_key(s3: S3Server, hsm: SoftHsm) -> dict[str, str]:
    return {**hsm.env(), "CAREVAULT_ROOT_KEY": f"pkcs11:token={hsm.token};object=nothing"}


WRONG_PIN = "000000-wrong"


def _wrong_pin(s3: S3Server, hsm: SoftHsm) -> dict[str, str]:
    pin_file = make_temp_dir("carevault-pin-") / "pin"
    pin_file.touch(mode=0o600)
    pin_file.write_text(WRONG_PIN)
    return {**hsm.env(), "CAREVAULT_PKCS11_PIN_FILE": str(pin_file)}


def _no_pin(s3: S3Server, hsm: SoftHsm) -> dict[str, str]:
    env = hsm.env()
    del env["CAREVAULT_PKCS11_PIN_FILE"]
    return env


REFUSALS: dict[str, tuple[Callable[[S3Server, SoftHsm], dict[str, str]], str]] = {
    "bad-value": (_bad_value, "is not a root key: use file:PATH"),
    "unreachable-kms": (_unreachable_kms, "the KMS cannot be reached"),
    "missing-kms-key": (_missing_kms_key, "NotFoundException"),
    "disabled-kms-key": (_disabled_kms_key, "the key is Disabled"),
    "missing-hsm-key": (_missing_hsm_key, "no AES-256 secret key labelled 'nothing'"),
    "wrong-pin": (_wrong_pin, "cannot log in to the token"),
    "no-pin": (_no_pin, "needs CAREVAULT_PKCS11_PIN_FILE"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_start_is_refused_naming_the_setting(
    case: str, keyservice_factory: KeyServiceFactory, s3_server: S3Server, softhsm: SoftHsm
) -> None:
    make_env, reason = REFUSALS[case]
    env = make_env(s3_server, softhsm)
    with pytest.raises(ServerStartError) as refused:
        keyservice_factory(extra_env=env)
    message = str(refused.value)
    assert "CAREVAULT_ROOT_KEY" in message
    assert reason in message
    assert WRONG_PIN not in message
    assert softhsm.pin_file.read_text().strip() not in message


def _released_after_root_rotation(
    factory: KeyServiceFactory, service: KeyService
) -> tuple[str, list[bytes]]:
    """A record's key released after ``rotate-root`` and a restart (no cached child key);
    the child's id and its key's wraps before and after."""
    admin = bootstrap_admin(service)
    educator, child = assigned_staff(service, admin)
    record = put_record(educator, child_ids=[child])
    engine = create_engine(service.env["CAREVAULT_DATABASE_URL"])
    query = text("SELECT wrapped FROM child_keys WHERE child_id = :c")
    with engine.connect() as connection:
        before = bytes(connection.execute(query, {"c": child}).scalar_one())
    output = run_keyservice_command(service.env, "rotate-root").stdout
    assert "root key version 2; rewrapped" in output
    with engine.connect() as connection:
        after = bytes(connection.execute(query, {"c": child}).scalar_one())
    engine.dispose()
    assert before[:4] == (1).to_bytes(4, "big")
    assert after[:4] == (2).to_bytes(4, "big")
    factory.restart(service)
    response, results = release(educator, [(record.record_id, 1)])
    assert educator.open_key(response, results[(record.record_id, 1)]) == record.record_key
    return child, [before, after]


def test_a_service_on_a_kms_key(keyservice_factory: KeyServiceFactory, s3_server: S3Server) -> None:
    key_id = s3_server.new_kms_key()
    service = keyservice_factory(extra_env=s3_server.kms_env(key_id))
    assert not Path(service.env["CAREVAULT_DATA_DIR"], "root.key").exists()
    child, (before, after) = _released_after_root_rotation(keyservice_factory, service)
    kms = s3_server.kms_client()
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=key_id)["Rotations"]] == [
        "ON_DEMAND"
    ]
    # The wraps are KMS ciphertexts of this key, bound to the child and the root version.
    for version, wrapped in ((1, before), (2, after)):
        context = {
            "carevault": "root/v1",
            "root_version": str(version),
            "child_id": child,
            "child_key_version": "1",
        }
        opened = kms.decrypt(KeyId=key_id, CiphertextBlob=wrapped[4:], EncryptionContext=context)
        assert len(opened["Plaintext"]) == 32
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(
                KeyId=key_id,
                CiphertextBlob=wrapped[4:],
                EncryptionContext={**context, "root_version": str(3 - version)},
            )


def test_a_service_on_an_hsm_key(keyservice_factory: KeyServiceFactory, softhsm: SoftHsm) -> None:
    label = "service-root"
    softhsm.add_key(label)
    env = {**softhsm.env(), "CAREVAULT_ROOT_KEY": f"pkcs11:token={softhsm.token};object={label}"}
    service = keyservice_factory(extra_env=env)
    assert not Path(service.env["CAREVAULT_DATA_DIR"], "root.key").exists()
    _released_after_root_rotation(keyservice_factory, service)
    assert softhsm.pin_file.read_text().strip() not in service.log_tail()
