"""The CLI run in-process against an end-to-end world's key service: one way to call it and
read what it said, for every CLI test module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from clients.cli import app

PASSPHRASE = {"CAREVAULT_PASSPHRASE": "cli test passphrase"}
runner = CliRunner()


def run_cli(profile: Path, *args: str) -> tuple[int, str]:
    """Exit code and everything printed, errors included, as one line of words."""
    result = runner.invoke(app, ["--profile", str(profile), *args], env=PASSPHRASE)
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def as_json(profile: Path, *args: str) -> Any:
    """The command's ``--json`` answer; the command must succeed."""
    result = runner.invoke(app, ["--profile", str(profile), "--json", *args], env=PASSPHRASE)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
