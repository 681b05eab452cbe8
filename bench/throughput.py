"""`python -m bench.throughput`: scoring and training throughput against the hardware's bound.

Reads the project's own outputs (data/, models/bert, models/lstm of the last `dvc repro`),
so it takes minutes, not the full benchmark's rebuild:

1. the float32 and bfloat16 matmul rate of this machine (bench.hardware), and the
   encoder's FLOPs per headline over the corpus's real WordPiece counts;
2. the logged BERT pyfunc scoring the whole corpus in float32 and in bfloat16 (the
   `inference_precision` load-time override), each as headlines/s and as a fraction of
   the bound measured beside it; test-split quality of both, side by side;
3. train_bert's training step (train_bert params, float32 and mixed_bfloat16) on the
   first rows of the train split, and where a step's time goes;
4. the LSTM pyfunc, and how its time splits between NLTK cleaning, the vocabulary
   lookup and TensorFlow.

Writes the `throughput` key of metrics/bench.json (other keys are kept) and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import fakenews  # noqa: F401  (TensorFlow's environment first)
from bench.bert_training import training_throughput
from bench.hardware import (
    Interleaved,
    MatmulBound,
    encoder_config,
    encoder_flops,
    machine,
    timed,
)
from bench.output import write_bench_key
from fakenews.data.params import PROJECT_ROOT, load_params, project_path
from fakenews.data.sections import Params
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError, cli_errors
from fakenews.evaluation import binary_metrics
from fakenews.precision import bfloat16_support

KEY = "throughput"


def load_pyfunc(model_dir: Path, **model_config):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(model_dir), model_config=model_config or None)


def word_pieces(model, titles: list[str], cap: int) -> np.ndarray:
    """Each title's WordPiece count with [CLS] and [SEP], capped at seq_length."""
    import tensorflow as tf

    pieces = model.unwrap_python_model().scorer.tokenize(tf.constant(titles))
    return np.minimum(pieces.merge_dims(1, -1).row_lengths().numpy() + 2, cap)


def bert_scoring(
    model_dir: Path, titles: list[str], test: pd.DataFrame, bounds: dict, flops: float, rounds: int
) -> dict[str, Any]:
    frame = pd.DataFrame({"title": titles})
    precisions = ["float32", "bfloat16"] if "bfloat16" in bounds else ["float32"]
    models = {p: load_pyfunc(model_dir, inference_precision=p) for p in precisions}
    if "bfloat16" in models and not models["bfloat16"].unwrap_python_model().scorer.bfloat16:
        raise PipelineError(
            f"{model_dir} predates inference_precision (MLflow ignored the "
            f"override): rerun train_bert (dvc repro) and the benchmark"
        )
    works = {p: (lambda m=m: m.predict(frame)) for p, m in models.items()}
    figures = Interleaved(bounds, flops).measure(works, len(titles), rounds)
    threshold = float(models["float32"].unwrap_python_model().config["threshold"])
    scored = {
        p: m.predict(test[["title"]])["fake_probability"].to_numpy() for p, m in models.items()
    }
    for p in precisions:
        quality = binary_metrics(test["label"], scored[p], threshold)
        figures[p]["test"] = {k: round(quality[k], 4) for k in ("accuracy", "roc_auc")}
        figures[p]["max_abs_probability_difference"] = float(
            np.abs(scored[p] - scored["float32"]).max()
        )
    if "bfloat16" in figures:
        speedups = np.divide(
            figures["bfloat16"]["items_per_second"], figures["float32"]["items_per_second"]
        )
        figures["bfloat16_speedup_median"] = round(float(np.median(speedups)), 2)
    return figures


def lstm_scoring(
    model_dir: Path, titles: list[str], params: Params, bounds: dict, rounds: int
) -> dict[str, Any]:
    """The LSTM pyfunc's rate, and its time split: NLTK cleaning, vocabulary lookup, TF."""
    from fakenews.text import clean_titles

    model = load_pyfunc(model_dir)
    scorer = model.unwrap_python_model().scorer
    frame = pd.DataFrame({"title": titles})
    units, length = params.train_lstm.lstm_units, params.train_lstm.max_length
    vectors = project_path(params.paths.embedded_dir) / "vectors.npy"
    dim = int(np.load(vectors, mmap_mode="r").shape[1])
    flops = 2.0 * length * 4 * units * (dim + units)  # the four gates' matmuls per token
    figures = Interleaved({"float32": bounds["float32"]}, flops).measure(
        {"float32": lambda: model.predict(frame)}, len(titles), rounds
    )["float32"]
    figures["flops_per_headline"] = flops
    tokens = clean_titles(titles, scorer.cleaning)
    seconds = {
        "nltk_cleaning": min(
            timed(lambda: clean_titles(titles, scorer.cleaning))[0] for _ in range(2)
        ),
        "vocabulary_lookup": min(timed(lambda: scorer.encode(tokens))[0] for _ in range(2)),
    }
    ids = scorer.encode(tokens)
    seconds["tensorflow"] = min(timed(lambda: scorer.probabilities(ids))[0] for _ in range(2))
    figures["time_share"] = {k: round(v / sum(seconds.values()), 3) for k, v in seconds.items()}
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    params = load_params(args.params)
    paths, bert_params = params.paths, params.train_bert
    parts = load_splits(project_path(paths.split), project_path(paths.ingested), ["id", "title"])
    titles = pd.concat([parts[s] for s in ("train", "val", "test")])["title"].tolist()[
        : args.rows or None
    ]
    bounds = {"float32": MatmulBound("float32")}
    if bfloat16_support():
        bounds["bfloat16"] = MatmulBound("bfloat16")
    models = project_path(paths.models_dir)
    missing = [name for name in ("bert", "lstm") if not (models / name / "MLmodel").is_file()]
    if missing:
        raise PipelineError(f"no {' or '.join(missing)} model in {models}: run `make repro` first")
    config = encoder_config(project_path(params.embed.bert_checkpoint), params.embed.bert_layers)
    lengths = word_pieces(load_pyfunc(models / "bert"), titles, bert_params.seq_length)
    flops = float(encoder_flops(lengths, config).mean())
    report: dict[str, Any] = {
        "machine": machine(),
        "bounds_gflops": {name: round(bound()[0]) for name, bound in bounds.items()},
        "encoder": {
            **config,
            "mean_word_pieces": round(float(lengths.mean()), 2),
            "gflop_per_headline": round(flops / 1e9, 4),
            "headlines": len(titles),
        },
    }
    say(f"bounds {report['bounds_gflops']} GFLOPS; {flops / 1e9:.3f} GFLOP per headline")
    say("BERT pyfunc scoring")
    report["bert_scoring"] = bert_scoring(
        models / "bert", titles, parts["test"], bounds, flops, args.rounds
    )
    if args.train_rows:
        say("train_bert steps")
        report["bert_training"] = training_throughput(
            bert_params, parts["train"], bounds, config, args.train_rows, args.train_rounds
        )
    say("LSTM pyfunc scoring")
    report["lstm_scoring"] = lstm_scoring(models / "lstm", titles, params, bounds, args.rounds)
    return report


def say(message: str) -> None:
    print(f"[bench.throughput {time.strftime('%H:%M:%S')}] {message}", flush=True)


def render(report: dict[str, Any]) -> str:
    m, e = report["machine"], report["encoder"]
    lines = [
        (
            f"{m['device']}, {m['cpus']} CPUs (affinity {m['affinity']}), bfloat16 flags "
            f"{m['bfloat16_flags'] or 'none'}, TF intra-op threads {m['tf_intra_op_threads']}"
        ),
        (
            f"matmul bound now: {report['bounds_gflops']} GFLOPS; encoder "
            f"{e['layers']}x{e['hidden']}"
            f"/{e['intermediate']}, {e['mean_word_pieces']} word pieces per headline, "
            f"{e['gflop_per_headline']} GFLOP each"
        ),
        "",
        "what                      headlines/s (best)   of float32 bound (median, best, CPU-time)",
    ]

    def row(name: str, fig: dict) -> None:
        extra = (
            f"   of bfloat16 bound {fig['ratio_bfloat16_median']:.2f}"
            if "ratio_bfloat16_median" in fig
            else ""
        )
        lines.append(
            f"{name:26s}{fig['items_per_second_best']:10.0f}         "
            f"{fig['ratio_float32_median']:.2f}, "
            f"{fig['ratio_float32_best']:.2f}, {fig['ratio_float32_cpu_time_median']:.2f}{extra}"
        )

    scoring = report["bert_scoring"]
    for precision in ("float32", "bfloat16"):
        if precision in scoring:
            row(f"BERT pyfunc {precision}", scoring[precision])
    for precision in ("float32", "mixed_bfloat16"):
        if precision in report.get("bert_training", {}):
            row(f"BERT training {precision}", report["bert_training"][precision])
    row("LSTM pyfunc", report["lstm_scoring"])
    if "bfloat16_speedup_median" in scoring:
        f32, bf16 = scoring["float32"]["test"], scoring["bfloat16"]["test"]
        lines.append(
            f"\nbfloat16 scoring: {scoring['bfloat16_speedup_median']}x float32; test accuracy "
            f"{bf16['accuracy']:.4f} vs {f32['accuracy']:.4f}, ROC-AUC {bf16['roc_auc']:.4f} vs "
            f"{f32['roc_auc']:.4f}; max probability change "
            f"{scoring['bfloat16']['max_abs_probability_difference']:.4f}"
        )
    if "bert_training" in report:
        t = report["bert_training"]
        lines.append(
            f"training step (ms, batch of {t['step_breakdown_ms']['rows']}): "
            f"{t['step_breakdown_ms']}; "
            f"padding overhead {t['padding_overhead']:.1%}"
        )
    lines.append(f"LSTM time share: {report['lstm_scoring']['time_share']}")
    return "\n".join(lines)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default=str(PROJECT_ROOT / "params.yaml"))
    parser.add_argument(
        "--rows", type=int, default=0, help="score only the first N headlines (0: all)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bound/score rounds")
    parser.add_argument(
        "--train-rows", type=int, default=512, help="training headlines per round (0: skip)"
    )
    parser.add_argument("--train-rounds", type=int, default=2)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "metrics" / "bench.json"))
    args = parser.parse_args(argv)
    report = run(args)
    write_bench_key(args.out, KEY, report)
    print(render(report))


if __name__ == "__main__":
    main()
