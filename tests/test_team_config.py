"""Team mode without servers: who may listen beyond loopback, and how secrets are kept."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from fakenews.errors import PipelineError
from fakenews.processes import check_bind_host, is_loopback
from fakenews.team.layout import SECRET_NAMES, load_secrets, team_paths
from tests.support.commands import PROJECT_ROOT, write_params


def test_only_loopback_without_authentication():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
        check_bind_host(host, authenticated=False, setting="tracking.host")
    for host in ("0.0.0.0", "::", "10.1.2.3", "mlflow.internal"):
        assert not is_loopback(host)
        with pytest.raises(PipelineError, match="no authentication"):
            check_bind_host(host, authenticated=False, setting="tracking.host")
        check_bind_host(host, authenticated=True, setting="--host")


def test_local_server_refuses_a_public_tracking_host_before_starting(tmp_path):
    params = write_params(tmp_path / "params.yaml", {"tracking": {"host": "0.0.0.0", "port": 5999}})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.tracking_server",
            "start",
            "--params",
            str(params),
            "--workdir",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "tracking.host is '0.0.0.0'" in proc.stderr
    assert "make team-up" in proc.stderr
    assert not (tmp_path / "mlflow" / "server.pid").exists()


def test_secrets_are_generated_once_private_and_never_shown(tmp_path, monkeypatch):
    for name in SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    paths = team_paths(tmp_path / "team")
    first = load_secrets(paths, create=True)
    assert stat.S_IMODE(paths.secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.secrets_dir.stat().st_mode) == 0o700
    assert load_secrets(paths).values == first.values
    assert not any(value in repr(first) for value in first.all())
    assert len(set(first.all())) == len(SECRET_NAMES)

    monkeypatch.setenv("TEAM_READER_PASSWORD", "from-the-environment-1")
    assert load_secrets(paths)["TEAM_READER_PASSWORD"] == "from-the-environment-1"
    monkeypatch.setenv("TEAM_READER_PASSWORD", "has a space and ' quote")
    with pytest.raises(PipelineError, match="TEAM_READER_PASSWORD") as bad:
        load_secrets(paths)
    assert "quote" not in str(bad.value)

    monkeypatch.delenv("TEAM_READER_PASSWORD")
    paths.secrets_file.chmod(0o644)
    with pytest.raises(PipelineError, match="chmod 600"):
        load_secrets(paths)
