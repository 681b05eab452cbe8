"""tools.profile: named overlays of params.yaml, as `make trial` and the tests use them."""

from __future__ import annotations

import subprocess
import sys

import yaml

from fakenews.data.params import PROFILES_DIR, load_params, read_params
from tests.support.commands import PROJECT_ROOT
from tools.profile import flags, merged


def profile_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.profile", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_flags_and_apply(tmp_path):
    assert "tiny" in profile_cli("list").stdout.split()
    tiny = read_params(PROFILES_DIR / "tiny.yaml")
    printed = profile_cli("flags", "tiny").stdout.split()
    assert printed == flags(tiny) and printed[:2] == ["-S", "ingest.max_rows_per_label=30"]
    out = tmp_path / "tiny-params.yaml"
    assert profile_cli("apply", "tiny", "--out", str(out)).returncode == 0
    applied = load_params(out)
    assert applied.train_lstm.epochs == tiny["train_lstm"]["epochs"]
    assert applied.split == load_params(PROJECT_ROOT / "params.yaml").split  # untouched sections
    assert yaml.safe_load(out.read_text()) == merged(
        read_params(PROJECT_ROOT / "params.yaml"), tiny
    )


def test_an_unknown_profile_is_one_line_naming_the_known_ones():
    result = profile_cli("flags", "huge")
    assert result.returncode == 2 and "no profile 'huge'" in result.stderr
    assert "tiny" in result.stderr and "Traceback" not in result.stderr
