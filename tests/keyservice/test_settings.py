"""Settings parsed and checked in one place (keyservice/settings.py): each wrong value is one
line naming the variable and what to do; every CAREVAULT_* name the repository uses is a
setting or another program's; the README's table lists every setting with its true default."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from keyservice.ops.startup import load_settings
from keyservice.settings import OTHER_PROGRAMS, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]

REFUSED: dict[str, tuple[dict[str, str], str]] = {
    "misspelt": (
        {"CAREVAULT_MAX_UPLOAD_BYTE": "5"},
        "CAREVAULT_MAX_UPLOAD_BYTE is not a setting of the key service: did you mean "
        "CAREVAULT_MAX_UPLOAD_BYTES?",
    ),
    "not-a-number": (
        {"CAREVAULT_MAX_UPLOAD_BYTES": "2GiB"},
        "CAREVAULT_MAX_UPLOAD_BYTES='2GiB' is refused: input should be a valid integer",
    ),
    "zero-limit": ({"CAREVAULT_REJECT_LIMIT": "0"}, "CAREVAULT_REJECT_LIMIT='0' is refused"),
    "public-url": (
        {"CAREVAULT_PUBLIC_URL": "127.0.0.1:8800"},
        "CAREVAULT_PUBLIC_URL='127.0.0.1:8800' is refused: not an http:// or https:// URL",
    ),
    "endpoint-port": (
        {"CAREVAULT_S3_ENDPOINT_URL": "http://minio:nine"},
        "CAREVAULT_S3_ENDPOINT_URL='http://minio:nine' is refused: not a URL",
    ),
    "kms-endpoint": (
        {"CAREVAULT_KMS_ENDPOINT_URL": "kms.local"},
        "CAREVAULT_KMS_ENDPOINT_URL='kms.local' is refused",
    ),
    "database": (
        {"CAREVAULT_DATABASE_URL": "mysql://carevault@db/carevault"},
        "CAREVAULT_DATABASE_URL='mysql://carevault@db/carevault' is refused: 'mysql' is "
        "neither SQLite nor PostgreSQL; use sqlite:///PATH or postgresql+psycopg://",
    ),
    "blob-store": (
        {"CAREVAULT_BLOB_STORE": "s3:/records"},
        "CAREVAULT_BLOB_STORE='s3:/records' is refused: not a blob store; use local:DIRECTORY "
        "or s3://BUCKET",
    ),
    "bucket-with-path": (
        {"CAREVAULT_CHECKPOINT_STORE": "s3://bucket/prefix"},
        "CAREVAULT_CHECKPOINT_STORE='s3://bucket/prefix' is refused",
    ),
    "root-key": (
        {"CAREVAULT_ROOT_KEY": "vault:transit/root"},
        "CAREVAULT_ROOT_KEY='vault:transit/root' is not a root key: use file:PATH",
    ),
    "previous-root-key": (
        {"CAREVAULT_ROOT_KEY_PREVIOUS": "kms"},
        "CAREVAULT_ROOT_KEY_PREVIOUS='kms' is not a root key",
    ),
    "synchronous": (
        {"CAREVAULT_SQLITE_SYNCHRONOUS": "fast"},
        "CAREVAULT_SQLITE_SYNCHRONOUS='fast' is refused",
    ),
    "part-size": (
        {"CAREVAULT_PART_SIZE_BYTES": "1024"},
        "CAREVAULT_PART_SIZE_BYTES='1024' is refused: input should be greater than or equal "
        "to 5242880; use at least 5242880",
    ),
    "retention": (
        {"CAREVAULT_RETENTION": "*=forever"},
        "CAREVAULT_RETENTION='*=forever' is refused",
    ),
    "log-level": ({"CAREVAULT_LOG_LEVEL": "loud"}, "CAREVAULT_LOG_LEVEL='loud' is refused"),
    "grace": (
        {"CAREVAULT_SHUTDOWN_GRACE_SECONDS": "-1"},
        "CAREVAULT_SHUTDOWN_GRACE_SECONDS='-1' is refused",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_wrong_setting_is_one_line_naming_it(case: str, tmp_path: Path) -> None:
    env, expected = REFUSED[case]
    with pytest.raises(SettingsError) as refused:
        load_settings({"CAREVAULT_DATA_DIR": str(tmp_path), **env})
    message = str(refused.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_secrets_are_never_in_a_refusal() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"CAREVAULT_METRICS_TOKEN": "short-secret"})
    assert str(refused.value).startswith("CAREVAULT_METRICS_TOKEN=(not shown) is refused")
    assert "short-secret" not in str(refused.value)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"CAREVAULT_DATABASE_URL": "mysql://carevault:pw-7731@db/carevault"})
    assert "pw-7731" not in str(refused.value)
    settings = Settings.from_env({"CAREVAULT_METRICS_TOKEN": "m" * 40})
    assert "m" * 40 not in repr(settings)


def test_the_defaults_are_the_embedded_deployment(tmp_path: Path) -> None:
    settings = Settings.from_env({"CAREVAULT_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'carevault.db'}"
    assert settings.blob_store == settings.checkpoint_store == f"local:{tmp_path / 'blobs'}"
    assert settings.root_key == f"file:{tmp_path / 'root.key'}"
    assert settings.audit_mac_key_file == tmp_path / "audit-mac.key"
    assert settings.max_upload_bytes == 1 << 30
    assert settings.metrics_token is None
    # Empty is unset, as for a compose file's `CAREVAULT_S3_ENDPOINT_URL=`.
    assert Settings.from_env({"CAREVAULT_S3_ENDPOINT_URL": ""}).s3_endpoint_url is None
    assert Settings.from_env({"CAREVAULT_SQLITE_SYNCHRONOUS": "normal"}).sqlite_synchronous == (
        "NORMAL"
    )


def _names_in_repository() -> set[str]:
    listed = subprocess.run(
        ["git", "grep", "-h", "-o", "-E", r"CAREVAULT_[A-Z0-9_]*[A-Z0-9]", "--", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return set(listed)


def test_every_name_the_repository_uses_is_known() -> None:
    """The tests, deploy/keyservice.env, deploy/compose.yaml, the bench and the demo keep
    working: none of the CAREVAULT_* names they use is refused as unknown."""
    known = set(Settings.variables()) | OTHER_PROGRAMS
    unknown = _names_in_repository() - known
    # Names the tests themselves make up to be refused.
    unknown -= {"CAREVAULT_MAX_UPLOAD_BYTE", "CAREVAULT_DATABSE_URL"}
    assert not unknown
    Settings.from_env(dict.fromkeys(OTHER_PROGRAMS, "x"))


def _readme_rows() -> dict[str, str]:
    """Each variable of the README's settings table, and its default as the table gives it."""
    rows: dict[str, str] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or "`CAREVAULT_" not in cells[0]:
            continue
        names = re.findall(r"`(CAREVAULT_[A-Z0-9_]+)`", cells[0])
        defaults = cells[2].split("`, `")
        for i, name in enumerate(names):
            rows[name] = defaults[i].strip("`") if len(defaults) == len(names) else cells[2]
    return rows


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_readme_table_lists_every_setting_with_its_default() -> None:
    rows = _readme_rows()
    assert set(Settings.variables()) <= set(rows), set(Settings.variables()) - set(rows)
    for name, field in Settings.model_fields.items():
        default = field.default
        if default in (None, "") or isinstance(default, Path):
            continue  # unset, or derived from the data directory: described, not a literal
        assert rows[f"CAREVAULT_{name.upper()}"] == _shown(default), name
