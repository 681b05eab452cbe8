"""Inference figures: batch throughput through mlflow.pyfunc and `mlflow models serve` latency,
and `python -m bench.inference`: what the ensemble costs to score next to its members.

The ensemble scores a headline by calling each member's logged model and blending their
probabilities, so its pass should cost about the members' passes together, which BERT's
dominates. `python -m bench.inference` loads this checkout's logged models (models/, from
its last `dvc repro`) and scores the corpus with each, interleaved round by round (this
machine's speed drifts within minutes), keeping each model's best round. Writes
metrics/bench_inference.json (bench.output).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.output import say, write_bench
from fakenews.data.params import PROJECT_ROOT, load_params
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError, cli_errors

SECTION = "ensemble_cost"
MEMBERS = ("lstm", "bert", "tfidf")


def pyfunc_throughput(model_uri: str, titles: list[str], repeats: int) -> dict[str, float]:
    """Headlines per second through mlflow.pyfunc, batch of the whole test split."""
    import mlflow.pyfunc

    load_started = time.monotonic()
    model = mlflow.pyfunc.load_model(model_uri)
    load_seconds = time.monotonic() - load_started
    frame = pd.DataFrame({"title": titles})
    model.predict(frame.head(8))  # warm-up: graph tracing is not throughput
    timings = []
    for _ in range(repeats):
        started = time.monotonic()
        model.predict(frame)
        timings.append(time.monotonic() - started)
    single = []
    for title in titles[:20]:
        started = time.monotonic()
        model.predict(pd.DataFrame({"title": [title]}))
        single.append(time.monotonic() - started)
    return {
        "headlines_per_second": round(len(titles) / statistics.median(timings), 1),
        "batch_rows": len(titles),
        "single_row_ms": round(1000 * statistics.median(single), 1),
        "load_seconds": round(load_seconds, 1),
    }


def serve_latency(model_uri: str, env: dict[str, str], titles: list[str]) -> dict[str, float]:
    """Median and p95 latency of one-headline requests to `mlflow models serve`."""
    import requests

    from tests.support.serving import served_model

    with served_model(model_uri, env) as url:
        requests.post(
            f"{url}/invocations", json={"dataframe_records": [{"title": titles[0]}]}, timeout=60
        ).raise_for_status()  # warm-up
        latencies = []
        for title in titles:
            started = time.monotonic()
            response = requests.post(
                f"{url}/invocations", json={"dataframe_records": [{"title": title}]}, timeout=60
            )
            latencies.append(1000 * (time.monotonic() - started))
            response.raise_for_status()
    latencies.sort()
    return {
        "requests": len(latencies),
        "median_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
    }


def ensemble_cost(models_dir: Path, titles: list[str], rounds: int) -> dict[str, Any]:
    """Each member's and the ensemble's pyfunc scoring of `titles`, interleaved, the best of
    `rounds` rounds each; the ensemble's time over the members' together and over BERT's."""
    import mlflow.pyfunc

    names = (*MEMBERS, "ensemble")
    missing = [n for n in names if not (models_dir / n / "MLmodel").is_file()]
    if missing:
        raise PipelineError(f"no {', '.join(missing)} model in {models_dir}: run `make repro`")
    models = {n: mlflow.pyfunc.load_model(str(models_dir / n)) for n in names}
    frame = pd.DataFrame({"title": titles})
    for model in models.values():
        model.predict(frame.head(64))  # warm-up: graph tracing and caches are not throughput
    best = dict.fromkeys(names, float("inf"))
    for round_ in range(1, rounds + 1):
        for name, model in models.items():
            started = time.perf_counter()
            model.predict(frame)
            best[name] = min(best[name], time.perf_counter() - started)
        say(f"round {round_}/{rounds}: " + ", ".join(f"{n} {t:.2f} s" for n, t in best.items()))
    members_together = sum(best[m] for m in MEMBERS)
    return {
        "headlines": len(titles),
        "rounds": rounds,
        "seconds": {n: round(t, 3) for n, t in best.items()},
        "headlines_per_second": {n: round(len(titles) / t, 1) for n, t in best.items()},
        "ensemble_over_members_together": round(best["ensemble"] / members_together, 3),
        "ensemble_over_bert": round(best["ensemble"] / best["bert"], 3),
    }


def render(figures: dict[str, Any]) -> str:
    lines = [f"pyfunc scoring of {figures['headlines']} headlines, best of {figures['rounds']}"]
    for name, rate in figures["headlines_per_second"].items():
        lines.append(f"  {name:9s} {rate:10.1f} headlines/s  {figures['seconds'][name]:7.2f} s")
    lines.append(
        f"ensemble / members together: {figures['ensemble_over_members_together']:.2f}; "
        f"ensemble / BERT: {figures['ensemble_over_bert']:.2f}"
    )
    return "\n".join(lines)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "metrics" / "bench_inference.json"))
    args = parser.parse_args(argv)
    paths = load_params(PROJECT_ROOT / "params.yaml").paths
    parts = load_splits(PROJECT_ROOT / paths.split, PROJECT_ROOT / paths.ingested, ["id", "title"])
    titles = pd.concat([parts[s] for s in ("train", "val", "test")])["title"].tolist()
    figures = ensemble_cost(PROJECT_ROOT / paths.models_dir, titles, args.rounds)
    write_bench(args.out, {SECTION: figures})
    print(render(figures))


if __name__ == "__main__":
    main()
