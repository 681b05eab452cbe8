"""The README cannot rot: its DAG is `dvc dag` output and its everyday commands run.

Every ```bash block preceded by a `<!-- tested -->` line is run here, line by line, in a
throwaway copy of the project on the tiny profile (the copy's params.yaml, never the
project's), with the copy's own tracking server on a free port. `make test` is the one
line skipped: it is what `.ci/run` itself runs.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from stages.lib.server import free_port
from tests.conftest import PROJECT_ROOT, TINY_STAGE_PARAMS, copy_repo, run, subprocess_env

README = PROJECT_ROOT / "README.md"
MARKER = "<!-- tested -->"
NOT_RUN_HERE = {"make test"}  # .ci/run runs it; running it inside the suite would recurse


def runnable_blocks(text: str) -> list[list[str]]:
    """Command lines of each ```bash block right after a MARKER line (comments dropped)."""
    blocks = re.findall(re.escape(MARKER) + r"\s*\n```bash\n(.*?)```", text, flags=re.S)
    return [[line.split(" #")[0].strip() for line in block.splitlines()
             if line.strip() and not line.lstrip().startswith("#")] for block in blocks]


def test_marked_blocks_are_found():
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    commands = [line for block in blocks for line in block]
    assert "make repro" in commands and "make test" in commands
    assert any(line.startswith("dvc exp run -S") for line in commands)


def test_dag_is_dvc_dag_output():
    dag = run(["dvc", "dag", "--md"], PROJECT_ROOT).stdout.strip()
    assert dag in README.read_text(encoding="utf-8"), "paste `dvc dag --md` into the README"


@pytest.fixture()
def tiny_copy(tmp_path):
    """The project copied, on the tiny profile, with the test's venv as its .venv."""
    repo = copy_repo(tmp_path)
    (repo / ".venv").symlink_to(Path(sys.executable).resolve().parents[1], target_is_directory=True)
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    for section, values in TINY_STAGE_PARAMS.items():
        params[section].update(values)
    params["tracking"]["port"] = free_port()
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com",
         "commit", "-qam", "tiny profile"], repo)
    yield repo
    run(["make", "server-stop"], repo, check=False)


@pytest.mark.slow
def test_readme_commands_run(tiny_copy):
    env = subprocess_env()
    outputs = {}
    for block in runnable_blocks(README.read_text(encoding="utf-8")):
        for command in block:
            if command in NOT_RUN_HERE:
                continue
            outputs[command] = run(["bash", "-c", command], tiny_copy, env, timeout=1200).stdout
    assert (tiny_copy / "metrics" / "evaluate.json").is_file()
    assert "champion" in "".join(out for cmd, out in outputs.items() if "promote show" in cmd)
