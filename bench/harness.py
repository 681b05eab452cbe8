"""The benchmark harness behind `make bench`: how long, how much memory, how good.

Everything runs in a throwaway copy of the project (tests.support.sandbox) against its own
`mlflow server` on a free loopback port, so the figures start from an empty DVC cache
and nothing touches the project's data or tracking store:

1. a full `dvc repro` with default params, sampling every stage's process tree for
   wall time and peak RSS;
2. no-op `dvc repro` (median of several);
3. an incremental `dvc repro` after changing one train_bert param;
4. MLflow logging overhead of each training run (the `mlflow_logging_seconds` metric
   that fakenews.tracking.runs records);
5. batch throughput of each logged pyfunc model, and the latency of single requests
   to `mlflow models serve` on the champion;
6. test-split quality of every model beside the references, and the LSTM's spread over
   seeds (bench.quality);
7. scoring and training throughput of the rebuilt models against the matmul bound
   measured beside them (bench.throughput).

It prints a table and writes the whole of metrics/bench.json, stamped with the commit
(bench.output), the machine's measured bounds at its top. It is not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench import throughput
from bench.inference import pyfunc_throughput, serve_latency
from bench.output import say, write_bench
from bench.quality import default_seeds, quality_report, quality_table, render_quality
from bench.sampling import timed_repro
from fakenews import TENSORFLOW_ENV
from fakenews.data.io import read_json
from fakenews.data.params import PROJECT_ROOT
from fakenews.data.splits import load_splits
from tests.support.sandbox import TINY_PROFILE

# In dvc.yaml's order; a stage added there is timed without a change here.
STAGES = list(yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])
TRAINING_STAGES = [s for s in STAGES if s.startswith("train_")] + ["blend"]
SCORED_MODELS = ["lstm", "bert", "tfidf", "ensemble"]
# --- dvc repro ------------------------------------------------------------------------


def set_params(repo: Path, changes: dict[str, dict[str, Any]]) -> None:
    """Edit the sandbox's params.yaml (never the project's)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def parse_assignment(text: str) -> dict[str, dict[str, Any]]:
    """`train_bert.seed=43` → {"train_bert": {"seed": 43}}."""
    key, _, value = text.partition("=")
    section, _, name = key.partition(".")
    if not (section and name and value):
        raise SystemExit(f"bench: --incremental-param wants section.key=value, got {text!r}")
    return {section: {name: yaml.safe_load(value)}}


def logging_overhead(
    uri: str, experiment: str, stages: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    overhead = {}
    for stage in TRAINING_STAGES:
        runs = client.search_runs(
            [found.experiment_id],
            f"tags.`dvc.stage` = '{stage}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )  # the full repro's run
        if not runs:
            continue
        seconds = runs[0].data.metrics.get("mlflow_logging_seconds", float("nan"))
        stage_seconds = stages.get(stage, {}).get("seconds") or float("nan")
        overhead[stage] = {
            "logging_seconds": round(seconds, 2),
            "share_of_stage": round(seconds / stage_seconds, 4),
        }
    return overhead


# --- the run --------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from fakenews.tracking.server import running_server
    from tests.support.sandbox import copy_project

    repo = copy_project(workdir)
    if args.profile == "tiny":
        set_params(repo, TINY_PROFILE)
    experiment = "bench"
    with running_server(workdir / "mlflow") as server:
        env = sandbox_env(server.uri, experiment)
        os.environ["MLFLOW_TRACKING_URI"] = server.uri  # for the pyfunc loads in this process
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        say(f"full dvc repro in {repo} (empty cache), tracking at {server.uri}")
        full = timed_repro(repo, env, sample=True)
        say(f"full repro: {full['seconds']:.0f} s")
        say("quality: every model on the test split, the LSTM retrained per seed")
        quality = quality_report(
            repo, default_seeds(repo)
        )  # while every output comes from default params
        noop = [timed_repro(repo, env) for _ in range(args.noop_runs)]
        say(f"no-op repro: median {statistics.median(r['seconds'] for r in noop):.1f} s")
        incremental = None
        if args.incremental_param:
            set_params(repo, parse_assignment(args.incremental_param))
            say(f"incremental repro after {args.incremental_param}")
            incremental = timed_repro(repo, env, sample=True)
            incremental["changed"] = args.incremental_param
            incremental["quality"] = quality_table(repo)["models"]
        titles = load_splits(
            repo / "data/split/assignment.parquet",
            repo / "data/ingested/headlines.parquet",
            ["id", "title"],
        )["test"]["title"].tolist()
        inference = {}
        for name in SCORED_MODELS:
            uri = read_json(repo / "models" / name / "mlflow_run.json")["model_uri"]
            say(f"pyfunc throughput of {name}")
            inference[name] = pyfunc_throughput(uri, titles, args.throughput_repeats)
        say("serving the champion with mlflow models serve")
        registered = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"][
            "registered_model"
        ]
        serving = serve_latency(
            f"models:/{registered}@champion", env, titles[: args.serve_requests]
        )
        overhead = logging_overhead(server.uri, experiment, full["stages"])
    say("throughput against the matmul bound (bench.throughput)")
    speeds = throughput.run(throughput.build_parser().parse_args([]), root=repo)
    bounds = speeds["bert_scoring"]["float32"]
    return {
        "settings": {"profile": args.profile, "incremental_param": args.incremental_param},
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            # the best matmul rate probed during the throughput runs
            "matmul_bound_gflops": {
                name.removesuffix("_gflops"): max(rates)
                for name, rates in bounds.items()
                if name.endswith("_gflops")
            },
        },
        "repro": {
            "full_seconds": full["seconds"],
            "full_ran": full["ran"],
            "noop_seconds_median": round(statistics.median(r["seconds"] for r in noop), 2),
            "noop_ran": sorted({s for r in noop for s in r["ran"]}),
            "incremental": incremental
            and {k: incremental[k] for k in ("seconds", "ran", "changed", "quality")},
        },
        "stages": full["stages"],
        "incremental_stages": incremental["stages"] if incremental else {},
        "mlflow_logging": overhead,
        "pyfunc": inference,
        "serve": serving,
        "quality": quality,
        "throughput": speeds,
    }


def sandbox_env(uri: str, experiment: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_EXPERIMENT_NAME": experiment,
            **TENSORFLOW_ENV,
        }
    )
    return env


def render(report: dict[str, Any]) -> str:
    repro, lines = report["repro"], []
    lines.append(
        f"profile {report['settings']['profile']} on {report['machine']['cpus']} CPUs, "
        f"{report['machine']['memory_gib']} GiB, matmul bound "
        f"{report['machine']['matmul_bound_gflops']} GFLOPS"
    )
    lines.append(f"full dvc repro (empty cache)  {repro['full_seconds']:8.1f} s")
    lines.append(
        f"no-op dvc repro (median)      {repro['noop_seconds_median']:8.1f} s  ran: "
        f"{repro['noop_ran'] or 'nothing'}"
    )
    if repro["incremental"]:
        inc = repro["incremental"]
        lines.append(
            f"incremental ({inc['changed']})  {inc['seconds']:8.1f} s  ran: {', '.join(inc['ran'])}"
        )
    lines.append("\nstage         seconds   peak RSS MiB")
    for stage in STAGES:
        fig = report["stages"].get(stage)
        if fig:
            lines.append(f"{stage:12s} {fig['seconds']:8.1f}   {fig['peak_rss_mib']:8d}")
    lines.append("\nMLflow logging per training run")
    for stage, fig in report["mlflow_logging"].items():
        lines.append(
            f"  {stage:12s} {fig['logging_seconds']:6.2f} s ({fig['share_of_stage']:.2%} of "
            "the stage)"
        )
    lines.append("\npyfunc inference")
    for name, fig in report["pyfunc"].items():
        lines.append(
            f"  {name:8s} {fig['headlines_per_second']:8.1f} headlines/s (batch of "
            f"{fig['batch_rows']}), "
            f"one headline {fig['single_row_ms']} ms, load {fig['load_seconds']} s"
        )
    serve = report["serve"]
    lines.append(
        f"mlflow models serve, champion: median {serve['median_ms']} ms, p95 {serve['p95_ms']} ms "
        f"over {serve['requests']} one-headline requests"
    )
    after = []
    if repro["incremental"]:
        inc = repro["incremental"]
        for name in (n for n in inc["ran"] if n.startswith("train_")):
            q = inc["quality"][name.removeprefix("train_")]
            after.append(
                f"{name.removeprefix('train_'):14s} {q['accuracy']:.3f}"
                f"{'':19s}{q['roc_auc']:.3f}    after {inc['changed']}"
            )
    lines.extend(render_quality(report["quality"], after))
    lines += ["", throughput.render(report["throughput"])]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Default params take about 40 minutes on 2 CPUs; --profile tiny about 5.",
    )
    parser.add_argument(
        "--profile",
        choices=["default", "tiny"],
        default="default",
        help="default params, or the tests' tiny profile to check the harness",
    )
    parser.add_argument(
        "--noop-runs", type=int, default=3, help="no-op repros to take the median of"
    )
    parser.add_argument(
        "--incremental-param",
        default="train_bert.seed=43",
        help="section.key=value to change before the incremental repro; '' skips it",
    )
    parser.add_argument("--throughput-repeats", type=int, default=3)
    parser.add_argument("--serve-requests", type=int, default=50)
    parser.add_argument(
        "--out",
        default=str(PROJECT_ROOT / "metrics" / "bench.json"),
        help="where to write the figures (default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the sandbox folder and say where")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # `kill`/timeouts unwind like Ctrl-C, so the sandbox's tracking server is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = Path(tempfile.mkdtemp(prefix="fakenews-bench-"))
    try:
        report = benchmark(args, workdir)
    finally:
        if args.keep:
            say(f"sandbox kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    write_bench(args.out, report)
    print(render(report))


if __name__ == "__main__":
    main()
