"""The tree is clean under the project's ruff settings (pyproject.toml), so `make test`
and CI fail on what `make lint` would: a lint error, or code the formatter would change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.commands import PROJECT_ROOT


def ruff(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert binary, "ruff is missing: `make venv` installs requirements.txt"
    return subprocess.run(
        [binary, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "command", [["check", "."], ["format", "--check", "."]], ids=["check", "format"]
)
def test_the_tree_is_clean(command):
    result = ruff(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_settings_catch_a_long_line(tmp_path):
    """The check reads pyproject.toml's settings; a line past its length fails."""
    bad = tmp_path / "bad.py"
    bad.write_text(f'X = "{"x" * 120}"\n', encoding="utf-8")
    result = ruff("check", "--config", str(PROJECT_ROOT / "pyproject.toml"), str(bad))
    assert result.returncode == 1 and "E501" in result.stdout
