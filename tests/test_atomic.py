"""atomic_path under SIGKILL: a writer killed at each step of the replace leaves its target
whole, old or new, and the next run finishes or undoes what it left (fakenews.data.io)."""

from __future__ import annotations

import os

import pytest

from fakenews.data import io
from fakenews.data.io import FAULT_POINTS, atomic_path
from tests.support.writers import NEW, OLD, STEPS, contents, kill_and_check, write_files

assert {step for steps in STEPS.values() for step in steps} == set(FAULT_POINTS)


@pytest.mark.parametrize(
    "kind, fault", [(kind, fault) for kind, steps in STEPS.items() for fault in steps]
)
def test_a_writer_killed_at_each_step_leaves_the_target_old_or_new(tmp_path, kind, fault):
    """Killed there, the target is whole (between a folder's two renames, the old one
    whole beside it); the next run recovers it with no leftover and writes the new one."""
    assert kill_and_check(tmp_path, kind, fault) == []


def test_every_file_and_folder_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    """A power loss cannot be staged here; what it needs is: the new bytes and folders on
    disk before any rename, and the parent folder after it."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(f"rename {dst}")
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "fsync", fsync)
    monkeypatch.setattr(io.os, "replace", replace)
    target = tmp_path / "out.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    rename = events.index(f"rename {target}")
    assert any(e.startswith("fsync ") and e.endswith("/out.json") for e in events[:rename])
    assert f"fsync {tmp_path}" in events[rename + 1 :]


def test_a_failed_block_leaves_the_old_target_and_no_temporary(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    write_files(target, OLD)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            write_files(tmp, NEW)
            raise RuntimeError("boom")
    assert contents(target) == OLD and [p.name for p in tmp_path.iterdir()] == ["report"]
