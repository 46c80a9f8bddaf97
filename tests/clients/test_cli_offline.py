"""The CLI's behaviour that needs no key service: help, exit codes, profile handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from clients.cli import app
from clients.output import EXIT_DENIED, EXIT_ERROR, EXIT_INTEGRITY, EXIT_USAGE

runner = CliRunner()


def test_help_documents_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "3 not allowed or not found" in text
    assert "4 a record failed its integrity check" in text
    assert (EXIT_ERROR, EXIT_USAGE, EXIT_DENIED, EXIT_INTEGRITY) == (1, 2, 3, 4)


def test_not_enrolled_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--profile", str(tmp_path), "whoami"])
    assert result.exit_code == EXIT_ERROR
    assert "not enrolled" in result.output
    assert "Traceback" not in result.output


def test_not_enrolled_in_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--profile", str(tmp_path), "--json", "children"])
    assert result.exit_code == EXIT_ERROR
    error = json.loads(result.stderr if result.stderr else result.output)
    assert error["exit_code"] == EXIT_ERROR
    assert "enrol" in error["error"]


def test_unknown_category_is_a_usage_error(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("x")
    result = runner.invoke(
        app,
        [
            "--profile",
            str(tmp_path),
            "records",
            "put",
            str(note),
            "--child",
            "a" * 32,
            "--category",
            "gossip",
        ],
    )
    assert result.exit_code == EXIT_USAGE


@pytest.mark.parametrize("argv", [["records"], ["admin"], ["nonsense"]])
def test_incomplete_commands_are_usage_errors(argv: list[str]) -> None:
    assert runner.invoke(app, argv).exit_code == EXIT_USAGE


def _enrol_with_no_service(profile: Path) -> Result:
    """``carevault enroll`` into ``profile``, at an address where no key service listens."""
    return runner.invoke(
        app,
        ["--profile", str(profile), "enroll", "--url", "http://127.0.0.1:9", "--code", "x"],
        env={"CAREVAULT_PASSPHRASE": "pw"},
    )


def test_enrol_refuses_to_overwrite_a_profile(tmp_path: Path) -> None:
    (tmp_path / "device.key").write_text("{}")
    result = _enrol_with_no_service(tmp_path)
    assert result.exit_code == EXIT_ERROR
    assert "already enrolled" in result.output
    assert (tmp_path / "device.key").read_text() == "{}"


def test_unreachable_service_is_reported_plainly(tmp_path: Path) -> None:
    result = _enrol_with_no_service(tmp_path)
    assert result.exit_code == EXIT_ERROR
    assert "Cannot reach the key service" in result.output
    assert not (tmp_path / "device.key").exists()
