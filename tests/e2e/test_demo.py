"""`make demo` runs to the end, every expected allow and deny holds, nothing is left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clients.demo"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "checks held" in result.stdout
    assert "refused" in result.stdout
    assert "The key service has been stopped." in result.stdout
