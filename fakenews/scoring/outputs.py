"""What batch scoring may replace: only its own earlier outputs, known by a marker.

`--output` names a path the user chose, where anything may stand: the user's reports
folder, a file another tool wrote, the input itself. Scoring replaces what stands there
only when it is an earlier output of tools.score:
- a folder output (Spark's part files) holds MARKER, listing every file written with it;
  a folder without it, or holding files it does not list, is left alone;
- a file output has a hidden marker beside it, `.<name>.fakenews-score.json`, recording
  the size, modification time and inode of the file as written; a file that has none, or
  was changed or replaced since, is left alone.
Otherwise one error says what stands there and what to do. An output inside its own
input (which a later run would read back as input), or an input inside the output
(which replacing the output would delete), is refused before anything is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from fakenews.data.io import read_json, write_json
from fakenews.errors import PipelineError

TOOL = "tools.score"
MARKER = "_fakenews_score.json"  # `_` names are skipped by Spark, Hive and our reader


def file_marker(target: Path) -> Path:
    return target.with_name(f".{target.name}.fakenews-score.json")


def _signature(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def check_replaceable(target: Path) -> None:
    """PipelineError unless `target` is free or an unchanged earlier output of ours."""
    if not os.path.lexists(target):
        return
    leave = "it is left alone: remove it yourself or choose another --output"
    if target.is_dir() and not target.is_symlink():
        marker = target / MARKER
        if not marker.is_file():
            raise PipelineError(
                f"{target}: a folder that tools.score did not write (it holds no {MARKER}); "
                + leave
            )
        listed = set(read_json(marker).get("files", []))
        present = {p.relative_to(target).as_posix() for p in target.rglob("*") if not p.is_dir()}
        extra = sorted(present - listed - {MARKER})
        if extra:
            shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise PipelineError(
                f"{target}: an earlier output of tools.score, but it now holds files that "
                f"tools.score did not write ({shown}); " + leave
            )
        return
    marker = file_marker(target)
    if not marker.is_file():
        raise PipelineError(f"{target}: a file that tools.score did not write; " + leave)
    if _signature(target) not in read_json(marker).get("written", []):
        raise PipelineError(
            f"{target}: written by tools.score, but changed or replaced since; " + leave
        )


def mark_file(written: Path, target: Path) -> None:
    """Record `written` (the complete temporary, about to be renamed onto `target`) as ours.
    The target's current signature stays listed until the rename is done, so a crash in
    between leaves the old output still recognised."""
    marker = file_marker(target)
    keep = []
    if target.is_file() and marker.is_file():
        keep = [s for s in read_json(marker).get("written", []) if s == _signature(target)]
    write_json({"written_by": TOOL, "written": [*keep, _signature(written)]}, marker)


def settle_file(target: Path) -> None:
    """After the rename: the marker lists only the output now in place."""
    write_json({"written_by": TOOL, "written": [_signature(target)]}, file_marker(target))


def mark_folder(folder: Path) -> None:
    """Write MARKER into a complete folder output, listing every file in it."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    write_json({"written_by": TOOL, "files": files}, folder / MARKER)


def forget_file_marker(target: Path) -> None:
    """A folder output now stands where a file output was: its marker is stale."""
    file_marker(target).unlink(missing_ok=True)


def check_apart(source: Path, target: Path) -> None:
    """PipelineError when the output is the input, lies inside it, or holds it."""
    source, target = source.resolve(), target.resolve()
    if target == source or source in target.parents:
        raise PipelineError(
            f"--output {target} is inside the input {source}: a later run would read it "
            "back as input; write it elsewhere"
        )
    if target in source.parents:
        raise PipelineError(
            f"--input {source} is inside --output {target}: replacing the output would "
            "delete the input; write the output elsewhere"
        )
