"""`dvc repro` timed as a whole, and the wall time and peak RSS of each of its stages,
sampled from its process tree."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.output import say


class Poller(threading.Thread):
    """A daemon thread calling `sample()` every `interval` seconds until `done` is set."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            time.sleep(self.interval)

    def sample(self) -> None:
        raise NotImplementedError


class StageSampler(Poller):
    """Polls a process tree; attributes each `python -m stages.<name>` process (and its
    children) to that stage: first and last time seen, and the peak of their summed RSS."""

    def __init__(self, root_pid: int, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.root_pid = root_pid
        self.stages: dict[str, dict[str, float]] = {}

    def sample(self) -> None:
        try:
            processes = psutil.Process(self.root_pid).children(recursive=True)
        except psutil.Error:
            return
        now, rss = time.monotonic(), {}
        for proc in processes:
            stage = _stage_of(proc)
            if stage:
                rss[stage] = rss.get(stage, 0) + _tree_rss(proc)
        for stage, total in rss.items():
            seen = self.stages.setdefault(stage, {"first": now, "last": now, "peak_rss": 0})
            seen["last"], seen["peak_rss"] = now, max(seen["peak_rss"], total)

    def figures(self) -> dict[str, dict[str, float]]:
        return {
            stage: {
                "seconds": round(s["last"] - s["first"], 1),
                "peak_rss_mib": round(s["peak_rss"] / 2**20),
            }
            for stage, s in self.stages.items()
        }


def _stage_of(proc: psutil.Process) -> str | None:
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return None
    # The shell dvc spawns also carries the command line; count only the interpreter.
    if "-m" not in cmdline or not Path(cmdline[0]).name.startswith("python"):
        return None
    module = cmdline[cmdline.index("-m") + 1] if cmdline.index("-m") + 1 < len(cmdline) else ""
    return module.removeprefix("stages.") if module.startswith("stages.") else None


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for member in [proc, *_children(proc)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def start_repro(repo: Path, env: dict[str, str]) -> subprocess.Popen:
    """`dvc repro` in `repo`, its output (stderr too) on one text pipe."""
    return subprocess.Popen(
        ["dvc", "repro"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def timed_repro(repo: Path, env: dict[str, str], sample: bool = False) -> dict[str, Any]:
    """Run `dvc repro`, echo its stage lines, and time it (and, optionally, every stage)."""
    started = time.monotonic()
    proc = start_repro(repo, env)
    sampler = StageSampler(proc.pid) if sample else None
    if sampler:
        sampler.start()
    ran, output = [], []
    for line in proc.stdout:
        output.append(line)
        if line.startswith("Running stage '"):
            ran.append(line.split("'")[1])
            say(f"  stage {ran[-1]} ({time.monotonic() - started:.0f} s in)")
    returncode = proc.wait()
    seconds = time.monotonic() - started
    if sampler:
        sampler.done.set()
        sampler.join()
    if returncode != 0:
        raise SystemExit(f"bench: dvc repro failed in {repo}:\n{''.join(output[-40:])}")
    return {
        "seconds": round(seconds, 2),
        "ran": ran,
        "stages": sampler.figures() if sampler else {},
    }
