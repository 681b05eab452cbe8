"""Benchmark figures files are each one run's measurement of one commit (bench.output):
the committed ones are checked, and the checks are attacked with the ways a file goes
wrong (a section pasted in from another run, no commit, uncommitted code)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.output import mixed_commits, source_state, write_bench
from tests.support.commands import PROJECT_ROOT

METRICS = PROJECT_ROOT / "metrics"
STAMPED = sorted(
    path
    for path in METRICS.glob("bench*.json")
    if path.name == "bench.json" or "commit" in json.loads(path.read_text(encoding="utf-8"))
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.mark.parametrize("path", STAMPED, ids=[p.name for p in STAMPED])
def test_each_committed_figures_file_is_one_run_of_one_commit_of_this_history(path: Path):
    report = json.loads(path.read_text(encoding="utf-8"))
    assert mixed_commits(report) == [], f"{path.name}: rerun the benchmark that writes it"
    if not (PROJECT_ROOT / ".git").exists():
        return  # an exported tree: no history to look the commit up in
    shallow = git(PROJECT_ROOT, "rev-parse", "--is-shallow-repository") == "true"
    known = subprocess.run(
        ["git", "cat-file", "-e", f"{report['commit']}^{{commit}}"], cwd=PROJECT_ROOT
    )
    if shallow and known.returncode != 0:
        return  # a shallow clone may not hold the commit measured
    ancestor = subprocess.run(
        ["git", "merge-base", "--is-ancestor", report["commit"], "HEAD"], cwd=PROJECT_ROOT
    )
    assert ancestor.returncode == 0, f"{path.name}: {report['commit']} is not in this history"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A git repo with code, a metrics file and a dvc.lock, all committed."""
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "metrics" / "evaluate.json").write_text("{}\n")
    (repo / "dvc.lock").write_text("stages: {}\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    return repo


def test_the_state_is_the_commit_and_only_code_changes_count(repo: Path):
    head = git(repo, "rev-parse", "HEAD")
    assert source_state(repo) == {"commit": head, "uncommitted_changes": []}
    # a repro rewrites metrics and dvc.lock: the code measured is still the commit's
    (repo / "metrics" / "evaluate.json").write_text('{"accuracy": 1}\n')
    (repo / "dvc.lock").write_text("stages: {a: 1}\n")
    (repo / "untracked.py").write_text("not part of the project\n")
    assert source_state(repo)["uncommitted_changes"] == []
    (repo / "code.py").write_text("x = 2\n")
    assert source_state(repo) == {"commit": head, "uncommitted_changes": ["code.py"]}
    assert source_state(repo.parent)["commit"] is None  # not a git checkout


def test_a_run_writes_its_whole_file_each_section_stamped(tmp_path: Path):
    out = tmp_path / "bench_x.json"
    out.write_text(json.dumps({"old_section": {"figure": 1}}))  # another run's file
    write_bench(out, {"speed": {"items_per_second": 5.0}, "quality": {"accuracy": 0.8}})
    report = json.loads(out.read_text())
    assert set(report) == {
        "commit",
        "uncommitted_changes",
        "command",
        "finished",
        "speed",
        "quality",
    }
    assert report["speed"]["commit"] == report["quality"]["commit"] == report["commit"]
    with pytest.raises(ValueError, match="must be a dict"):
        write_bench(out, {"profile": "default"})
    with pytest.raises(ValueError, match="header key"):
        write_bench(out, {"commit": {"x": 1}})


def test_a_section_from_another_commit_is_caught():
    one, two = "a" * 40, "b" * 40
    good = {"commit": one, "uncommitted_changes": [], "speed": {"commit": one, "rate": 1}}
    assert mixed_commits(good) == []
    pasted = {**good, "quality": {"commit": two, "accuracy": 0.8}}
    assert mixed_commits(pasted) == [f"section 'quality' is from commit {two}, the file from {one}"]
    unstamped = {**good, "suite": {"wall_minutes": 6.7}}
    assert "section 'suite' is from commit None" in mixed_commits(unstamped)[0]
    assert mixed_commits({**good, "profile": "default"})  # a bare value is no section
    assert mixed_commits({"speed": {"rate": 1}})[0] == "the file records no commit"
    dirty = {**good, "uncommitted_changes": ["fakenews/text.py"]}
    assert "uncommitted changes" in mixed_commits(dirty)[0]
