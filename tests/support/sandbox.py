"""A throwaway copy of the project as a fresh git + DVC repo, for tests and benchmarks.

The copy holds the project's current files (committed or not, as `git ls-files` lists
them) but no data, no DVC cache, no dvc.lock and no metrics, so `dvc repro` in it
starts from nothing. `../shared` is linked beside it, so default params read the real
offline data.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fakenews.data.params import PROFILES_DIR, PROJECT_ROOT, read_params

SHARED = PROJECT_ROOT.parent / "shared"
# params/tiny.yaml: a few dozen headlines, one epoch, a 1-layer slice of MiniLM (no test
# of it asserts quality). Tests apply it with `dvc exp run -S` or a temp params file;
# `python -m bench --profile tiny` uses it too.
TINY_PROFILE = read_params(PROFILES_DIR / "tiny.yaml")
_GIT_IDENTITY = ["-c", "user.name=sandbox", "-c", "user.email=sandbox@example.com"]


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return [rel for rel in listed if rel and (PROJECT_ROOT / rel).is_file()]


def copy_project(dest: Path | str, dvc_cache: Path | str | None = None) -> Path:
    """`dest/repo`, a committed git repo with the project's files; returns its path.

    With `dvc_cache`, the copy uses that folder as its DVC cache (a local setting, not
    committed), so copies sharing it also share DVC's run cache: a stage that already ran
    with the same code, data and params in another copy is restored instead of rerun.
    """
    dest = Path(dest)
    repo = dest / "repo"
    for rel in _project_files():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / rel, repo / rel)
    shutil.rmtree(repo / "data", ignore_errors=True)
    (repo / "data").mkdir()
    shutil.rmtree(repo / "metrics", ignore_errors=True)
    (repo / "metrics").mkdir()
    (repo / "dvc.lock").unlink(missing_ok=True)
    (dest / "shared").symlink_to(SHARED, target_is_directory=True)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", *_GIT_IDENTITY, "commit", "-q", "-m", "sandbox copy"],
    ):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    if dvc_cache is not None:
        subprocess.run(
            ["dvc", "cache", "dir", "--local", str(dvc_cache)],
            cwd=repo,
            check=True,
            capture_output=True,
        )
    return repo
