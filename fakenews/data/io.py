"""Atomic writes: every output appears whole or not at all, and survives a crash whole.

The protocol of atomic_path, for a target T in folder F:
1. the caller writes a temporary sibling (F/.T.tmp-<pid>-*/T); it is fsynced, file by file
   and folder by folder, so no later step can expose an empty or partial file;
2. a file (or a new output where nothing stood) is renamed over T in one rename(2): any
   reader sees the old T or the new one;
3. a folder cannot be renamed over a folder, so the old T is renamed aside to F/.T.replaced,
   the new one renamed to T, and then the old one deleted;
4. F is fsynced after each rename, so the rename itself survives a power loss.
A crash between the two renames of step 3 leaves no T but the old one whole at
F/.T.replaced; the next atomic_path of T (or recover(T)) puts it back, and removes the old
one instead when the new T is already in place, as well as temporaries of dead writers.
Writers of one folder take turns on the renames (a flock on F) so two cannot interleave.
Each step is a fault point (fakenews.faults) where a test can SIGKILL the writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from fakenews.errors import PipelineError
from fakenews.faults import fault_point

# Where each step of the protocol ends; FAKENEWS_FAULT_POINT=<name> kills the writer there.
WRITTEN, RENAMED, ASIDE, SWAPPED, DELETING = (
    "atomic.written",  # the temporary is complete and fsynced; nothing renamed yet
    "atomic.renamed",  # a file renamed over the target, the folder not yet fsynced
    "atomic.aside",  # a folder target renamed aside; the new one not yet in
    "atomic.swapped",  # the new folder in; the old one not yet deleted
    "atomic.deleting",  # the old folder half deleted
)
FAULT_POINTS = (WRITTEN, RENAMED, ASIDE, SWAPPED, DELETING)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; put it in place of `target` only if the block
    succeeds (module docstring). Works for files and folders alike."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise RuntimeError(f"nothing was written for {target}")
        _fsync_tree(tmp)
        fault_point(WRITTEN)
        with _folder_lock(target.parent):
            _put_in_place(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _put_in_place(new: Path, target: Path) -> None:
    old_is_folder = target.is_dir() and not target.is_symlink()
    if not (old_is_folder or (new.is_dir() and os.path.lexists(target))):
        os.replace(new, target)
        fault_point(RENAMED)
        _fsync_folder(target.parent)
        return
    aside = aside_path(target)
    os.rename(target, aside)
    _fsync_folder(target.parent)
    fault_point(ASIDE)
    os.rename(new, target)
    _fsync_folder(target.parent)
    fault_point(SWAPPED)
    _remove(aside)
    _fsync_folder(target.parent)


def aside_path(target: Path) -> Path:
    """Where a replaced folder waits while its replacement is renamed in."""
    return target.with_name(f".{target.name}.replaced")


def recover(target: Path | str) -> None:
    """Finish what a writer of `target` killed mid-replace left: the old folder back when
    the new one never came in, the old one deleted when it did; and the temporaries of
    writers no longer alive removed."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    with _folder_lock(target.parent):
        aside = aside_path(target)
        if os.path.lexists(aside):
            if os.path.lexists(target):
                _remove(aside)
            else:
                os.rename(aside, target)
            _fsync_folder(target.parent)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.tmp-(\d+)-")
    for leftover in target.parent.iterdir():
        match = pattern.match(leftover.name)
        if match and not _alive(int(match[1])):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One writer at a time renames in `folder`: flock on the folder itself, so no lock
    file is left beside the outputs."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_tree(path: Path) -> None:
    """Every file and folder under `path` (or the file `path`) on disk, and the folder
    holding it."""
    if path.is_dir() and not path.is_symlink():
        for folder, _, files in os.walk(path):
            for name in files:
                _fsync_file(Path(folder) / name)
            _fsync_folder(Path(folder))
    elif not path.is_symlink():
        _fsync_file(path)
    _fsync_folder(path.parent)


def _fsync_file(path: Path) -> None:
    if path.is_symlink():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Delete a file or a folder tree (a fault point after its first file goes)."""
    if not (path.is_dir() and not path.is_symlink()):
        path.unlink(missing_ok=True)
        return
    first = True
    for folder, subfolders, files in os.walk(path, topdown=False):
        for name in files:
            (Path(folder) / name).unlink()
            if first:
                fault_point(DELETING)
                first = False
        for name in subfolders:
            sub = Path(folder) / name
            sub.unlink() if sub.is_symlink() else sub.rmdir()
    path.rmdir()


def write_json(data: Any, target: Path | str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_parquet(frame: pd.DataFrame, target: Path | str) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(frame: pd.DataFrame, target: Path | str, sep: str = ",") -> None:
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, sep=sep, index=False)  # the temp keeps the name: .gz still compresses


@contextlib.contextmanager
def csv_read_errors(path: Path | str, encoding: str, encoding_fix: str) -> Iterator[None]:
    """Turn pandas' usual CSV failures inside the block into one-paragraph PipelineErrors
    naming `path`; `encoding_fix` says how the user picks another encoding (a param, a flag).

    Readers pass index_col=False: else pandas takes a first column that has no header as
    the index and shifts every cell one column left. Rows with more cells than the header
    would then be cut short with a warning; here that is an error too."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            yield
    except pd.errors.ParserWarning:
        raise PipelineError(
            f"{path}: some rows have more cells than the header line has columns; quote "
            "cells that hold the separator, or check the separator"
        ) from None
    except UnicodeDecodeError as err:
        raise PipelineError(
            f"{path}: cannot be decoded as {encoding} (byte {err.start}: {err.reason}); "
            f"{encoding_fix} (for example latin-1 or cp1252)"
        ) from None
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as err:
        raise PipelineError(f"{path}: not a readable CSV: {err}") from None


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
