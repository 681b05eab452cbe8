"""Where the test suite's time goes: `python -m bench.suite [--command "make test"]`.

Runs the suite as CI does (`make test` in this checkout) while sampling every process on
the machine twice a second, then prints:
- the wall time, and the CPU time that the processes started during the run used, plus the
  machine's busy time from /proc/stat, which also counts the processes too short to sample;
- that CPU time by kind of process: each stage, each CLI tool, the MLflow and model
  servers, Spark, DVC, the team services, and the pytest workers themselves (the tests
  that run in-process);
- the floor it sets: busy CPU-minutes / cores is the least wall time this machine can do.

The busy time is the whole machine's, so run it with nothing else running. On a shared
machine the wall time varies 2-3x between runs; the CPU figures by kind are what to
compare, and `--baseline REV` measures another commit's suite right before this one (in a
git worktree beside this checkout, sharing its venv), so the two wall times are a ratio
taken on one machine in one run. Writes metrics/bench_suite.json (bench.output).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from bench.output import say, write_bench
from bench.sampling import Poller
from fakenews.data.params import PROJECT_ROOT
from fakenews.errors import PipelineError, cli_errors

KEY = "suite"  # this benchmark's section of metrics/bench_suite.json
KINDS = (  # (pattern in the command line, kind); the first match wins
    (r"-m (stages\.\w+)", None),
    (r"-m (tools\.\w+)", None),
    (r"mlflow\.pyfunc\.scoring_server|mlflow models serve", "model server (mlflow models serve)"),
    (r"mlflow server|mlflow\.server|uvicorn", "MLflow tracking server"),
    (r"pyspark|spark-class|org\.apache\.spark", "Spark (JVM and Python workers)"),
    (r"\bdvc\b", "dvc"),
    (r"postgres", "PostgreSQL"),
    (r"\bweed\b", "S3 (SeaweedFS)"),
    (r"chrom", "Chromium"),
    (r"pytest|exec\(eval\(sys\.stdin", "pytest workers (in-process tests)"),
)


def kind_of(cmdline: str) -> str:
    for pattern, kind in KINDS:
        found = re.search(pattern, cmdline)
        if found:
            return kind or found.group(1)
    return "other"


class CpuSampler(Poller):
    """CPU seconds (user + system, own threads only) of every process seen, by kind.
    A process that was running before the sampler started counts only what it used since."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(interval)
        self.started = time.time()
        self.seen: dict[tuple[int, float], dict[str, Any]] = {}
        self.me = os.getpid()

    def sample(self) -> None:
        for proc in psutil.process_iter(["pid", "create_time", "cmdline"]):
            try:
                cpu = proc.cpu_times()
                used = cpu.user + cpu.system
                key = (proc.info["pid"], proc.info["create_time"])
                if key not in self.seen:
                    new = proc.info["create_time"] >= self.started
                    self.seen[key] = {
                        "kind": kind_of(" ".join(proc.info["cmdline"] or [])),
                        "base": 0.0 if new else used,
                        "used": used,
                        "own": proc.info["pid"] == self.me,
                    }
                self.seen[key]["used"] = used
            except psutil.Error:
                continue

    def by_kind(self) -> dict[str, dict[str, float]]:
        kinds: dict[str, dict[str, float]] = defaultdict(
            lambda: {"processes": 0, "cpu_seconds": 0.0}
        )
        for record in self.seen.values():
            spent = record["used"] - record["base"]
            if record["own"] or spent <= 0:
                continue
            kinds[record["kind"]]["processes"] += 1
            kinds[record["kind"]]["cpu_seconds"] += spent
        return {
            kind: {"processes": int(v["processes"]), "cpu_seconds": round(v["cpu_seconds"], 1)}
            for kind, v in sorted(kinds.items(), key=lambda kv: -kv[1]["cpu_seconds"])
        }


def busy_seconds() -> float:
    """Seconds of CPU time all cores spent busy since boot (/proc/stat: not idle, not iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def measure(command: list[str], cwd: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Run `command` in `cwd` and return its time figures."""
    sampler = CpuSampler()
    sampler.start()
    busy, started = busy_seconds(), time.monotonic()
    status = subprocess.run(command, cwd=cwd).returncode
    wall, busy = time.monotonic() - started, busy_seconds() - busy
    sampler.done.set()
    sampler.join()
    kinds = sampler.by_kind()
    cores = psutil.cpu_count()
    return {
        "command": shlex.join(command),
        "exit_status": status,
        "cores": cores,
        "wall_minutes": round(wall / 60, 2),
        "busy_cpu_minutes": round(busy / 60, 2),
        "sampled_cpu_minutes": round(sum(k["cpu_seconds"] for k in kinds.values()) / 60, 2),
        "floor_minutes": round(busy / 60 / cores, 2),
        "utilisation": round(busy / wall / cores, 2),
        "by_kind": kinds,
    }


def render(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['command']}: exit {figures['exit_status']}, {figures['wall_minutes']:.1f} "
        "min wall",
        f"CPU busy {figures['busy_cpu_minutes']:.1f} CPU-min on {figures['cores']} cores "
        f"({figures['utilisation']:.0%} used): no faster than {figures['floor_minutes']:.1f} "
        "min here",
        f"sampled by process: {figures['sampled_cpu_minutes']:.1f} CPU-min",
        "",
        "| kind of process | processes | CPU s | share |",
        "|---|---|---|---|",
    ]
    total = sum(k["cpu_seconds"] for k in figures["by_kind"].values()) or 1.0
    for kind, k in figures["by_kind"].items():
        if k["cpu_seconds"] >= 1:
            lines.append(
                f"| {kind} | {k['processes']} | {k['cpu_seconds']:.0f} | "
                f"{k['cpu_seconds'] / total:.0%} |"
            )
    return "\n".join(lines)


@contextlib.contextmanager
def baseline_checkout(rev: str) -> Iterator[tuple[Path, str]]:
    """Commit `rev` checked out beside this project (its ../shared is this one's) with this
    venv linked in; removed afterwards. Yields the folder and the full commit."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise PipelineError(f"--baseline {rev}: not a commit of {PROJECT_ROOT}") from None
    folder = PROJECT_ROOT.parent / f".suite-baseline-{commit[:10]}"
    git("worktree", "add", "--detach", str(folder), commit)
    try:
        (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        yield folder, commit
    finally:
        git("worktree", "remove", "--force", str(folder))


def measure_against(rev: str, command: list[str]) -> dict[str, Any]:
    """The suite of `rev`, then this checkout's, one after the other; both and their ratio.
    The baseline runs with `make -o .venv/.installed`, so it never reinstalls the shared venv."""
    with baseline_checkout(rev) as (folder, commit):
        say(f"baseline: {shlex.join(command)} at {commit[:10]} in {folder}")
        base_command = command[:1] + ["-o", ".venv/.installed"] + command[1:]
        baseline = {"baseline_commit": commit, **measure(base_command, folder)}
    say(f"this checkout: {shlex.join(command)}")
    current = measure(command)
    ratios = {
        "wall": round(current["wall_minutes"] / baseline["wall_minutes"], 3),
        "busy_cpu": round(current["busy_cpu_minutes"] / baseline["busy_cpu_minutes"], 3),
    }
    return {KEY: current, "baseline": baseline, "over_baseline": ratios}


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--command",
        default="make test",
        help="what to run and measure (default: %(default)s, as .ci/run)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="first run the same command at commit REV (a make target: run with -o "
        ".venv/.installed) and report this suite's wall and CPU time as ratios of it",
    )
    parser.add_argument("--out", default=str(PROJECT_ROOT / "metrics" / "bench_suite.json"))
    args = parser.parse_args(argv)
    command = shlex.split(args.command)
    if args.baseline:
        sections = measure_against(args.baseline, command)
        ratios = sections["over_baseline"]
        print(render(sections["baseline"]), "\n")
        print(
            f"this suite / the baseline's: wall {ratios['wall']:.2f}, busy CPU "
            f"{ratios['busy_cpu']:.2f}\n"
        )
    else:
        sections = {KEY: measure(command)}
    write_bench(args.out, sections)
    figures = sections[KEY]
    print(render(figures))
    if figures["exit_status"] != 0:
        raise SystemExit(figures["exit_status"])


if __name__ == "__main__":
    main()
