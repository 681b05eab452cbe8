"""Batch scoring at scale: a million headlines, in-process engine against Spark local[N].

    python -m bench.scale --model models/lstm                 # 1,000,000 rows, both engines
    python -m bench.scale --model models/bert --rows 100000   # BERT scores ~15x slower

The input is the FakeNewsNet corpus (../shared/data) repeated to --rows headlines, each with
a unique id, as Parquet part files. Each engine runs `python -m tools.score` as a real
command in its own process, while a sampler polls its process tree (psutil):
- rows/s (wall clock, model loading and Spark's start included), rows/s per core given
  to the engine, and rows per CPU-second actually used (the fairest figure on a shared
  machine);
- peak RSS of the driver (the scorer's process, and Spark's JVM, which in local mode also
  hosts the executors) and of the workers (Spark's Python workers, where the model runs);
- time to first output: until the first scored rows reach a file on disk.
It writes metrics/bench_scale.json (bench.output). It is not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from bench.output import say, write_bench
from bench.sampling import Poller
from fakenews.data.params import PROJECT_ROOT

KEY = "scale"  # this benchmark's section of metrics/bench_scale.json
CORPUS = PROJECT_ROOT.parent / "shared" / "data" / "fakenewsnet"


def corpus_titles(folder: Path = CORPUS) -> list[str]:
    titles = [
        pd.read_csv(f, dtype=str, keep_default_na=False)["title"]
        for f in sorted(folder.glob("*.csv"))
    ]
    return pd.concat(titles, ignore_index=True).tolist()


def build_input(rows: int, parts: int, folder: Path) -> Path:
    """`rows` headlines (the corpus repeated, ids unique) as `parts` Parquet part files."""
    titles = corpus_titles()
    folder.mkdir(parents=True)
    per_part = -(-rows // parts)
    for part, start in enumerate(range(0, rows, per_part)):
        index = range(start, min(rows, start + per_part))
        pd.DataFrame(
            {"id": [f"r{i}" for i in index], "title": [titles[i % len(titles)] for i in index]}
        ).to_parquet(folder / f"part-{part:05d}.parquet", index=False)
    return folder


class TreeSampler(Poller):
    """Peak RSS of a process tree, split into driver and workers, CPU seconds of the whole
    tree, and when the first scored bytes appear under `output_dir`."""

    def __init__(self, root: psutil.Process, output_dir: Path, interval: float = 0.5) -> None:
        super().__init__(interval)
        self.root, self.output_dir = root, output_dir
        self.started = time.monotonic()
        self.peak = {"driver": 0, "workers": 0}
        self.cpu: dict[int, float] = {}
        self.first_output: float | None = None

    def sample(self) -> None:
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss = {"driver": 0, "workers": 0}
        for proc in members:
            try:
                with proc.oneshot():
                    kind = "workers" if _is_python_worker(proc) else "driver"
                    rss[kind] += proc.memory_info().rss
                    times = proc.cpu_times()
                    self.cpu[proc.pid] = (
                        times.user + times.system + times.children_user + times.children_system
                    )
            except psutil.Error:
                continue
        for kind, total in rss.items():
            self.peak[kind] = max(self.peak[kind], total)
        if self.first_output is None and _scored_bytes(self.output_dir):
            self.first_output = time.monotonic() - self.started


def _is_python_worker(proc: psutil.Process) -> bool:
    """Spark's Python daemon and the workers it forks (`-m pyspark.daemon`)."""
    try:
        return "pyspark.daemon" in " ".join(proc.cmdline()) or (
            proc.parent() is not None and "pyspark.daemon" in " ".join(proc.parent().cmdline())
        )
    except psutil.Error:
        return False


def _scored_bytes(folder: Path) -> bool:
    """Any part of the output (or its temporary sibling) holding data yet."""
    for path in folder.rglob("*"):
        try:
            if (
                path.is_file()
                and not path.name.startswith(("_", "."))
                and path.suffix != ".crc"
                and path.stat().st_size > 0
            ):
                return True
        except OSError:
            continue
    return False


def run_engine(
    engine: str, source: Path, model: str, rows: int, master: str, work: Path, extra: list[str]
) -> dict[str, Any]:
    """One `python -m tools.score` run, sampled; its figures."""
    output_dir = work / engine
    output_dir.mkdir()
    command = [
        sys.executable,
        "-m",
        "tools.score",
        "--input",
        str(source),
        "--output",
        str(output_dir / "scored.parquet"),
        "--model",
        model,
        "--engine",
        engine,
        "--master",
        master,
        *extra,
    ]
    say(f"{engine}: {' '.join(command[1:])}")
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = TreeSampler(psutil.Process(proc.pid), output_dir)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed ({proc.returncode}):\n{err[-3000:]}")
    say(out.strip())
    cores = _cores(engine, master)
    cpu_seconds = sum(sampler.cpu.values())
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds, 1),
        "cores": cores,
        "rows_per_s_per_core": round(rows / seconds / cores, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "rows_per_cpu_s": round(rows / cpu_seconds, 1) if cpu_seconds else None,
        "first_output_s": round(sampler.first_output, 1) if sampler.first_output else None,
        "peak_rss_mib": {k: round(v / 2**20) for k, v in sampler.peak.items()},
    }


def _cores(engine: str, master: str) -> int:
    machine = psutil.cpu_count() or 1
    if engine != "spark" or not master.startswith("local["):
        return machine
    inside = master[len("local[") : -1].split(",")[0]
    return machine if inside == "*" else int(inside)


def render(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['rows']:,} headlines, model {figures['model']}, {figures['machine']}",
        "| engine | rows/s | rows/s/core | rows/CPU-s | first output | peak RSS driver / workers |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in figures["engines"].items():
        lines.append(
            f"| {name} | {f['rows_per_s']:,.0f} | {f['rows_per_s_per_core']:,.0f} | "
            f"{f['rows_per_cpu_s']:,.0f} | {f['first_output_s']} s | "
            f"{f['peak_rss_mib']['driver']:,} / {f['peak_rss_mib']['workers']:,} MiB |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, help="model URI or folder, as tools.score takes it"
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--parts", type=int, default=8, help="input part files (default: %(default)s)"
    )
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--engines", nargs="+", default=["in-process", "spark"])
    parser.add_argument(
        "--score-args", default="", help="more tools.score options, e.g. '--batch-size 512'"
    )
    parser.add_argument("--out", default=str(PROJECT_ROOT / "metrics" / "bench_scale.json"))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fakenews-scale-"))
    try:
        source = build_input(args.rows, args.parts, work / "input")
        figures = {
            "rows": args.rows,
            "model": args.model,
            "master": args.master,
            "input": f"{args.parts} Parquet part files, the corpus repeated",
            "machine": f"{psutil.cpu_count()} cores, "
            "{psutil.virtual_memory().total / 2**30:.0f} GiB",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "engines": {
                engine: run_engine(
                    engine,
                    source,
                    args.model,
                    args.rows,
                    args.master,
                    work,
                    args.score_args.split(),
                )
                for engine in args.engines
            },
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_bench(args.out, {KEY: figures})
    print(render(figures))


if __name__ == "__main__":
    main()
