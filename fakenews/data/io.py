"""Atomic writes: every output appears whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from fakenews.errors import PipelineError


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `target` only if the block succeeds.

    Works for files and directories alike. The sibling lives in the same folder so the
    final rename is atomic on one filesystem.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {target}")
        _remove(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


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
    naming `path`; `encoding_fix` says how the user picks another encoding (a param, a flag)."""
    try:
        yield
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
