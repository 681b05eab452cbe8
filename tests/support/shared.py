"""Session resources shared by every pytest-xdist worker of one test run.

`make test` runs several workers. Whatever several tests read but none changes (the
tracking server, the tiny `dvc repro`, the hub modules, the in-process training) is built
once per run, by the first worker that asks, under a file lock; the other workers wait for
it and reuse it. Long-lived processes are started detached and recorded here, and the
controller stops them when the whole run ends (`stop_recorded`), since the worker that
started one may finish before the others are done with it.

Without xdist the same code runs in the one pytest process, which is then its own
controller.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from fakenews.processes import stop_group

DONE = ".done"
FAILED = ".failed"


def is_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def shared_root(basetemp: Path) -> Path:
    """The folder every worker of this run sees: the controller's basetemp, of which each
    worker's own basetemp is a subfolder (`popen-gw0`, ...)."""
    return basetemp.parent if is_worker() else basetemp


def once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """`root/name`, built by `build(folder)` the first time any worker asks for it.

    A build that failed is not retried by the next worker: it fails with the same message,
    so a broken fixture costs its time once and is reported the same everywhere.
    """
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if (folder / DONE).exists():
            return folder
        if (folder / FAILED).exists():
            raise RuntimeError(
                f"shared fixture {name!r} failed in another worker:\n"
                + (folder / FAILED).read_text()
            )
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            build(folder)
        except BaseException as err:
            (folder / FAILED).write_text(f"{type(err).__name__}: {err}")
            raise
        (folder / DONE).touch()
    return folder


def record_process(root: Path, pid: int, what: str) -> None:
    """Leave `pid` (a process-group leader) for `stop_recorded` to stop at the end."""
    records = root / "processes"
    records.mkdir(exist_ok=True)
    (records / f"{pid}").write_text(what)


def stop_recorded(root: Path) -> None:
    """Stop every recorded process group that is still alive."""
    records = root / "processes"
    for record in sorted(records.glob("*")) if records.is_dir() else []:
        stop_group(int(record.name), record.read_text())
        record.unlink()


def wait_for_file(path: Path, timeout: float, what: str) -> str:
    """The content of `path` once it exists (written by rename, so never half-written)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout:.0f}s ({path} missing)")
        time.sleep(0.5)
    return path.read_text()
