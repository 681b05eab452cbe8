"""Test-split quality: every model with its 95 % interval beside both TF-IDF references,
and the LSTM's spread over seeds.

`python -m bench` calls it on its sandbox after the full `dvc repro`. On its own,
`python -m bench.quality` reads this project's outputs (after `make repro`), retrains the
LSTM in-process with each seed (no tracking server; same params, data and vocabulary
rules as the stage) and writes metrics/bench_quality.json (bench.output).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.output import write_bench
from fakenews.data.io import read_json
from fakenews.data.params import PROJECT_ROOT, load_params
from fakenews.data.splits import load_splits

REFERENCE = "tfidf_logreg"  # the bar the LSTM must clear
SCORES = [
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "f1",
]
# Figures from the reference article, on its own data: not comparable with ours.
ARTICLE_REFERENCES = {
    "article LSTM (2,095 headlines)": 0.594,
    "article BERT (2,095 headlines)": 0.613,
    "article GloVe LSTM (full articles)": 0.918,
}


def quality_table(repo: Path) -> dict[str, Any]:
    """Every model's test figures from the repro's metrics/evaluate.json."""
    evaluation = read_json(repo / "metrics" / "evaluate.json")
    split = read_json(repo / "metrics" / "split.json")["test"]
    return {
        "test_split": {"rows": split["rows"], "fake_rate": split["fake_rate"]},
        "models": {
            name: {k: round(v, 4) for k, v in scores.items() if k in SCORES}
            for name, scores in evaluation.items()
        },
        "other_data": ARTICLE_REFERENCES,
    }


def lstm_seed_spread(repo: Path, seeds: list[int]) -> dict[str, Any]:
    """The LSTM trained once per seed on the repro's data and params, each scored on the
    test split at the threshold it chose on validation."""
    from fakenews.evaluation import binary_metrics, choose_threshold
    from fakenews.models import lstm

    params = load_params(repo / "params.yaml")
    paths = params.paths
    splits = load_splits(repo / paths.split, repo / paths.cleaned, ["id", "title", "tokens"])
    parts = lstm.tokens_for(splits, params.lstm_cleaning(), params.clean)
    embedded = repo / paths.embedded_dir
    words = (embedded / "words.txt").read_text(encoding="utf-8").splitlines()
    inputs = lstm.encode_inputs(parts, words, np.load(embedded / "vectors.npy"), params.train_lstm)
    ids, labels = inputs.ids, {name: part["label"].to_numpy() for name, part in parts.items()}
    per_seed = {}
    for seed in seeds:
        started = time.monotonic()
        model, history = lstm.train(
            ids["train"],
            labels["train"],
            ids["val"],
            labels["val"],
            inputs.embeddings,
            params.train_lstm.model_copy(update={"seed": seed}),
        )
        threshold = choose_threshold(labels["val"], lstm.predict(model, ids["val"]))
        scores = binary_metrics(labels["test"], lstm.predict(model, ids["test"]), threshold)
        per_seed[str(seed)] = {
            "accuracy": round(scores["accuracy"], 4),
            "roc_auc": round(scores["roc_auc"], 4),
            "epochs": len(history["loss"]),
            "seconds": round(time.monotonic() - started, 1),
        }
    return {
        "seeds": per_seed,
        **{
            metric: spread([s[metric] for s in per_seed.values()])
            for metric in ("accuracy", "roc_auc")
        },
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def quality_report(repo: Path, seeds: list[int]) -> dict[str, Any]:
    """The table, the LSTM's seeds, and whether every seed beats the reference on both."""
    table = quality_table(repo)
    seeds_report = lstm_seed_spread(repo, seeds) if seeds else None
    reference = table["models"].get(REFERENCE)
    if seeds_report and reference:
        seeds_report["every_seed_beats_" + REFERENCE] = all(
            s["accuracy"] > reference["accuracy"] and s["roc_auc"] > reference["roc_auc"]
            for s in seeds_report["seeds"].values()
        )
    return {**table, "lstm_seeds": seeds_report}


def render_quality(quality: dict[str, Any], after_models: list[str] = ()) -> list[str]:
    """The quality table as text lines; `after_models` (e.g. an incremental repro's rows)
    go below the models."""
    split = quality["test_split"]
    lines = [
        f"\ntest split: {split['rows']} headlines, fake rate {split['fake_rate']:.3f}",
        "model           accuracy (95% CI)        ROC-AUC (95% CI)",
    ]
    for name, q in quality["models"].items():
        lines.append(
            f"{name:14s} {q['accuracy']:.3f} "
            f"({q['accuracy_ci_low']:.3f}-{q['accuracy_ci_high']:.3f})"
            f"    {q['roc_auc']:.3f} ({q['roc_auc_ci_low']:.3f}-{q['roc_auc_ci_high']:.3f})"
        )
    lines.extend(after_models)
    seeds = quality.get("lstm_seeds")
    if seeds:
        lines.append(
            "LSTM per seed  "
            + "  ".join(
                f"{seed}: {s['accuracy']:.3f} / {s['roc_auc']:.3f}"
                for seed, s in seeds["seeds"].items()
            )
        )
        acc, auc = seeds["accuracy"], seeds["roc_auc"]
        lines.append(
            f"LSTM over seeds accuracy {acc['mean']:.3f} ± {acc['std']:.3f}, "
            f"ROC-AUC {auc['mean']:.3f} ± {auc['std']:.3f} (mean ± sd); every seed above "
            f"{REFERENCE} on both: {seeds.get('every_seed_beats_' + REFERENCE)}"
        )
    lines.append("other data, for context only:")
    for name, accuracy in quality["other_data"].items():
        lines.append(f"  {name:36s} accuracy {accuracy:.3f}")
    return lines


def default_seeds(repo: Path, count: int = 3) -> list[int]:
    """The committed train_lstm seed and the next ones."""
    seed = load_params(repo / "params.yaml").train_lstm.seed
    return list(range(seed, seed + count))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--repo",
        default=str(PROJECT_ROOT),
        help="a project whose pipeline has run (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        default=None,
        help="LSTM seeds (default: train_lstm.seed and the next two)",
    )
    parser.add_argument(
        "--out",
        default=str(PROJECT_ROOT / "metrics" / "bench_quality.json"),
        help="where to write the figures (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    repo = Path(args.repo)
    seeds = default_seeds(repo) if args.seeds is None else args.seeds
    quality = quality_report(repo, seeds)
    write_bench(args.out, {"quality": quality})
    print("\n".join(render_quality(quality)))


if __name__ == "__main__":
    main()
