"""A writer SIGKILLed at a step of atomic_path's replace, and what it must leave: the target
whole, old or new, and after the next run's recovery no leftover (used by
tests/test_atomic.py and `make bench-faults`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from fakenews.data import io
from fakenews.faults import FAULT_ENV
from tests.support.commands import PROJECT_ROOT, subprocess_env

OLD = {"model.bin": "old weights " * 2000, "vocab/words.txt": "old words", "old_only.txt": "x"}
NEW = {"model.bin": "new weights " * 3000, "vocab/words.txt": "new words", "new_only.txt": "y"}

# The steps each kind of target passes through: a file is renamed over its target, a
# folder goes through the aside protocol.
STEPS = {
    "folder": (io.WRITTEN, io.ASIDE, io.SWAPPED, io.DELETING),
    "file": (io.WRITTEN, io.RENAMED),
}

# A writer that replaces `target` with NEW, as a stage would: a folder or one file.
WRITER = """
import json, sys
from pathlib import Path
from fakenews.data.io import atomic_path
target, kind, files = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
with atomic_path(target) as tmp:
    if kind == "file":
        tmp.write_text(files["model.bin"])
    else:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
"""


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def contents(path: Path) -> dict[str, str] | str | None:
    """A folder's files, a file's text, or None when nothing is there."""
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_text() for p in path.rglob("*") if p.is_file()
        }
    return path.read_text() if path.exists() else None


def run_writer(target: Path, kind: str, fault: str | None) -> int:
    """The writer's exit status: 0, or -SIGKILL when `fault` names a step it reached."""
    env = subprocess_env()
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(target), kind, json.dumps(NEW)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"the writer failed:\n{proc.stderr}")
    return proc.returncode


def old_and_new(kind: str) -> tuple:
    return (OLD, NEW) if kind == "folder" else (OLD["model.bin"], NEW["model.bin"])


def kill_and_check(folder: Path, kind: str, fault: str) -> list[str]:
    """Replace an old target in the empty `folder` with a writer killed at `fault`, then
    recover and write again as the next run would; what went wrong, in words ([]: none)."""
    target = folder / ("model" if kind == "folder" else "model.bin")
    old, new = old_and_new(kind)
    if kind == "folder":
        target.mkdir()
        write_files(target, OLD)
    else:
        target.write_text(OLD["model.bin"])
    problems = []
    if run_writer(target, kind, fault) != -signal.SIGKILL:
        problems.append(f"{fault}: the writer was not killed there")
    left = contents(target)
    if fault == io.ASIDE:
        # between the two renames: no target, the old one whole beside it until the next run
        if not (left is None and contents(io.aside_path(target)) == old):
            problems.append(f"{fault}: the old folder is not whole beside the target")
    elif left not in (old, new):
        problems.append(f"{fault}: the target is neither old nor new")
    io.recover(target)  # what the next run of any writer does first
    if contents(target) != (old if fault in (io.WRITTEN, io.ASIDE) else new):
        problems.append(f"{fault}: after recovery the target is not what the crash left")
    if sorted(p.name for p in folder.iterdir()) != [target.name]:
        problems.append(
            f"{fault}: leftovers after recovery: {sorted(p.name for p in folder.iterdir())}"
        )
    if run_writer(target, kind, None) != 0 or contents(target) != new:
        problems.append(f"{fault}: the next write did not go through")
    if sorted(p.name for p in folder.iterdir()) != [target.name]:
        problems.append(f"{fault}: leftovers after the next write")
    return problems
