"""What every benchmark shares on its way out: progress lines on stderr, and one whole
figures file per run, stamped with the commit it measured.

A run writes its own whole file and never a key of another run's file: `make bench`
writes metrics/bench.json, each partial benchmark its own metrics/bench_<name>.json. The
file's `commit` is the checkout's HEAD and `uncommitted_changes` the code that differed
from it (the pipeline's outputs, metrics/ and dvc.lock, do not count). Every section also
carries the commit, so a section pasted in from another run is caught: `mixed_commits`,
which tests/test_bench_files.py runs on every committed file.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fakenews.data.io import write_json
from fakenews.data.params import PROJECT_ROOT

# The file's own keys; every other top-level key is a section of figures.
HEADER = ("commit", "uncommitted_changes", "command", "finished")
# The pipeline's outputs: a repro changes them, and they are not the code being measured.
NOT_CODE = ("metrics", "dvc.lock")


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def source_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The commit checked out at `root` (None outside git) and the tracked code files
    that differ from it."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip() or None
    excluded = [f":(exclude){path}" for path in NOT_CODE]
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)
    changed = sorted(line[3:] for line in (status or "").splitlines() if line.strip())
    return {"commit": commit, "uncommitted_changes": changed}


def write_bench(out: Path | str, sections: dict[str, dict[str, Any]]) -> None:
    """Write `sections` as the whole file `out`, the file and each section stamped with
    the commit (run this when the figures are measured, from the checkout measured)."""
    state = source_state()
    report: dict[str, Any] = {
        **state,
        "command": " ".join(["python", *sys.orig_argv[1:]]),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for name, figures in sections.items():
        if name in HEADER or not isinstance(figures, dict):
            raise ValueError(f"bench section {name!r} must be a dict and not a header key")
        report[name] = {"commit": state["commit"], **figures}
    write_json(report, out)
    if state["uncommitted_changes"]:
        say(
            f"note: measured with uncommitted changes to {len(state['uncommitted_changes'])} "
            f"file(s) ({', '.join(state['uncommitted_changes'][:3])}...): commit first to "
            f"keep these figures"
        )
    say(f"figures written to {out} (commit {str(state['commit'])[:10]})")


def mixed_commits(report: dict[str, Any]) -> list[str]:
    """What makes a figures file not one run's measurement of one commit: no commit,
    uncommitted code, or a section stamped with another commit (or none)."""
    problems = []
    commit = report.get("commit")
    if not commit:
        problems.append("the file records no commit")
    if report.get("uncommitted_changes"):
        problems.append(f"measured with uncommitted changes: {report['uncommitted_changes']}")
    for name, section in report.items():
        if name in HEADER:
            continue
        stamp = section.get("commit") if isinstance(section, dict) else None
        if stamp != commit:
            problems.append(f"section {name!r} is from commit {stamp}, the file from {commit}")
    return problems
