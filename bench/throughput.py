"""`python -m bench.throughput`: scoring and training throughput against the hardware's bound.

Reads a project's own outputs (data/, models/bert, models/lstm of its last `dvc repro`;
this checkout by default), so it takes minutes, not the full benchmark's rebuild:

1. the float32 and bfloat16 matmul rate of this machine (bench.hardware), and the
   encoder's FLOPs per headline over the corpus's real WordPiece counts;
2. the logged BERT pyfunc scoring the corpus twice over in float32, in bfloat16 (the
   `inference_precision` load-time override) and in float32 with its encoder compiled by
   XLA (`jit_compile`, a bench-only variant), each as headlines/s and as a fraction of the
   bound measured beside it (bench.hardware.Interleaved: runs of interleaved rounds, the
   best of each); test-split quality of float32 and bfloat16 side by side; the
   tokenizer's share of a float32 pass; where each precision's op time goes (bench.profile);
3. train_bert's training step (train_bert params, float32 and mixed_bfloat16) on the
   first rows of the train split, and where a step's time goes;
4. the LSTM pyfunc, first with a fresh model (nothing cleaned yet) and then warm, and how
   its time splits between cleaning, the vocabulary lookup and TensorFlow.

Writes metrics/bench_throughput.json (bench.output) and prints a table; `make bench` runs
the same measurement on its own rebuild and writes it into metrics/bench.json.
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
from bench.output import write_bench
from bench.profile import op_time_shares
from fakenews.data.params import PROJECT_ROOT, load_params
from fakenews.data.sections import Params
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError, cli_errors
from fakenews.evaluation import binary_metrics
from fakenews.precision import bfloat16_support

SECTION = "throughput"


def load_pyfunc(model_dir: Path, **model_config):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(model_dir), model_config=model_config or None)


def with_xla(model):
    """A freshly loaded pyfunc (not yet called), its encoder-and-head function compiled
    by XLA: every batch shape compiles once, then runs as one XLA program."""
    import tensorflow as tf

    scorer = model.unwrap_python_model().scorer
    scorer.classify = tf.function(scorer.classify, jit_compile=True)
    return model


def bert_scoring(
    model_dir: Path,
    titles: list[str],
    test: pd.DataFrame,
    bounds: dict,
    flops: float,
    rounds: int,
    runs: int,
) -> dict[str, Any]:
    frame = pd.DataFrame({"title": titles})
    precisions = ["float32", "bfloat16"] if "bfloat16" in bounds else ["float32"]
    models = {p: load_pyfunc(model_dir, inference_precision=p) for p in precisions}
    if "bfloat16" in models and not models["bfloat16"].unwrap_python_model().scorer.bfloat16:
        raise PipelineError(
            f"{model_dir} predates inference_precision (MLflow ignored the "
            f"override): rerun train_bert (dvc repro) and the benchmark"
        )
    models["float32_xla"] = with_xla(load_pyfunc(model_dir, inference_precision="float32"))
    works = {p: (lambda m=m: m.predict(frame)) for p, m in models.items()}
    figures = Interleaved(bounds, flops).measure(works, len(titles), rounds, runs)
    threshold = float(models["float32"].unwrap_python_model().config["threshold"])
    scored = {
        p: m.predict(test[["title"]])["fake_probability"].to_numpy() for p, m in models.items()
    }
    for p in models:
        quality = binary_metrics(test["label"], scored[p], threshold)
        figures[p]["test"] = {k: round(quality[k], 4) for k in ("accuracy", "roc_auc")}
        figures[p]["max_abs_probability_difference"] = float(
            np.abs(scored[p] - scored["float32"]).max()
        )
    for twin in ("bfloat16", "float32_xla"):
        if twin in figures:
            figures[f"{twin}_speedup"] = [
                round(a / b, 3)
                for a, b in zip(
                    figures[twin]["items_per_second"],
                    figures["float32"]["items_per_second"],
                    strict=True,
                )
            ]
            figures[f"{twin}_speedup_median"] = round(
                float(np.median(figures[f"{twin}_speedup"])), 2
            )
    scorer = models["float32"].unwrap_python_model().scorer
    tokenize = min(timed(lambda: scorer.encoder_inputs(titles))[0] for _ in range(rounds))
    figures["tokenizer_share_of_float32"] = round(
        tokenize * figures["float32"]["items_per_second_best"] / len(titles), 3
    )
    figures["op_time"] = {p: op_time_shares(works[p]) for p in precisions}
    return figures


def lstm_scoring(
    root: Path, titles: list[str], params: Params, bounds: dict, rounds: int, runs: int
) -> dict[str, Any]:
    """The LSTM pyfunc's rate (fresh, then warm), and its time split: cleaning, the
    vocabulary lookup, TensorFlow."""
    from fakenews.text import clean_titles, cleaner_for

    frame = pd.DataFrame({"title": titles})
    cleaner_for.cache_clear()  # no word cleaned yet in this process: a fresh model's rate
    model = load_pyfunc(under(root, params.paths.models_dir) / "lstm")
    first_seconds, _ = timed(lambda: model.predict(frame))
    scorer = model.unwrap_python_model().scorer
    lstm = params.train_lstm
    vectors = under(root, params.paths.embedded_dir) / "vectors.npy"
    dim = int(np.load(vectors, mmap_mode="r").shape[1])
    directions = 2 if lstm.bidirectional else 1
    # the four gates' matmuls per token and direction, over the padded length
    flops = 2.0 * lstm.max_length * 4 * lstm.lstm_units * (dim + lstm.lstm_units) * directions
    figures = Interleaved({"float32": bounds["float32"]}, flops).measure(
        {"float32": lambda: model.predict(frame)}, len(titles), rounds, runs
    )["float32"]
    figures["first_call_items_per_second"] = round(len(titles) / first_seconds, 1)
    figures["flops_per_headline"] = flops
    tokens = clean_titles(titles, scorer.cleaning)
    ids, lengths = scorer.encode(tokens)
    seconds = {
        "cleaning": min(timed(lambda: clean_titles(titles, scorer.cleaning))[0] for _ in range(3)),
        "vocabulary_lookup": min(timed(lambda: scorer.encode(tokens))[0] for _ in range(3)),
        "tensorflow": min(timed(lambda: scorer.probabilities(ids, lengths))[0] for _ in range(3)),
    }
    figures["seconds"] = {k: round(v, 4) for k, v in seconds.items()}
    figures["time_share"] = {k: round(v / sum(seconds.values()), 3) for k, v in seconds.items()}
    figures["mean_tokens"] = round(float(lengths.mean()), 2)
    return figures


def under(root: Path, path: str | Path) -> Path:
    """A path from params, relative to the project at `root`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else root / path


def run(args: argparse.Namespace, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The throughput section for the project at `root` (its params, data and models)."""
    params = load_params(args.params or root / "params.yaml")
    paths, bert_params = params.paths, params.train_bert
    parts = load_splits(under(root, paths.split), under(root, paths.ingested), ["id", "title"])
    corpus = pd.concat([parts[s] for s in ("train", "val", "test")])["title"].tolist()
    titles = (corpus * args.repeat)[: args.rows or None]
    bounds = {"float32": MatmulBound("float32")}
    if bfloat16_support():
        bounds["bfloat16"] = MatmulBound("bfloat16")
    models = under(root, paths.models_dir)
    missing = [name for name in ("bert", "lstm") if not (models / name / "MLmodel").is_file()]
    if missing:
        raise PipelineError(f"no {' or '.join(missing)} model in {models}: run `make repro` first")
    config = encoder_config(under(root, params.embed.bert_checkpoint), params.embed.bert_layers)
    scorer = load_pyfunc(models / "bert").unwrap_python_model().scorer
    lengths = scorer.encoder_inputs(titles)[1]
    flops = float(encoder_flops(lengths, config).mean())
    report: dict[str, Any] = {
        "machine": machine(),
        "bounds_gflops": {name: round(bound()[0]) for name, bound in bounds.items()},
        "protocol": {
            "headlines": len(titles),
            "corpus_repeats": args.repeat,
            "runs": args.runs,
            "rounds_per_run": args.rounds,
            "ratio": "per run: best rate of its rounds / best bound probed between them",
        },
        "encoder": {
            **config,
            "mean_word_pieces": round(float(lengths.mean()), 2),
            "gflop_per_headline": round(flops / 1e9, 4),
            "batch_tokens": scorer.batch_tokens,
        },
    }
    say(f"bounds {report['bounds_gflops']} GFLOPS; {flops / 1e9:.3f} GFLOP per headline")
    say(f"BERT pyfunc scoring: {args.runs} runs of {args.rounds} rounds, {len(titles)} headlines")
    report["bert_scoring"] = bert_scoring(
        models / "bert", titles, parts["test"], bounds, flops, args.rounds, args.runs
    )
    if args.train_rows:
        say("train_bert steps")
        report["bert_training"] = training_throughput(
            bert_params, parts["train"], bounds, config, args.train_rows, args.train_rounds
        )
    say("LSTM pyfunc scoring")
    report["lstm_scoring"] = lstm_scoring(root, titles, params, bounds, args.rounds, args.runs)
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
            f"matmul bound at the start: {report['bounds_gflops']} GFLOPS; encoder "
            f"{e['layers']}x{e['hidden']}/{e['intermediate']}, {e['mean_word_pieces']} word "
            f"pieces per headline, {e['gflop_per_headline']} GFLOP each"
        ),
        "",
        "what                      headlines/s (best)   of float32 bound (per run; median)",
    ]

    def row(name: str, fig: dict) -> None:
        extra = (
            f"   of bfloat16 bound {fig['ratio_bfloat16_median']:.2f}"
            if "ratio_bfloat16_median" in fig
            else ""
        )
        runs = ", ".join(f"{r:.2f}" for r in fig["ratio_float32"])
        lines.append(
            f"{name:26s}{fig['items_per_second_best']:10.0f}         "
            f"{runs}; {fig['ratio_float32_median']:.2f}{extra}"
        )

    scoring = report["bert_scoring"]
    for variant in ("float32", "bfloat16", "float32_xla"):
        if variant in scoring:
            row(f"BERT pyfunc {variant}", scoring[variant])
    for precision in ("float32", "mixed_bfloat16"):
        if precision in report.get("bert_training", {}):
            row(f"BERT training {precision}", report["bert_training"][precision])
    row("LSTM pyfunc", report["lstm_scoring"])
    if "bfloat16_speedup_median" in scoring:
        f32, bf16 = scoring["float32"]["test"], scoring["bfloat16"]["test"]
        lines.append(
            f"\nbfloat16 scoring: {scoring['bfloat16_speedup']} x float32 per run (median "
            f"{scoring['bfloat16_speedup_median']}); test accuracy {bf16['accuracy']:.4f} vs "
            f"{f32['accuracy']:.4f}, ROC-AUC {bf16['roc_auc']:.4f} vs {f32['roc_auc']:.4f}; "
            f"max probability change {scoring['bfloat16']['max_abs_probability_difference']:.4f}"
        )
    lines.append(
        f"XLA (jit_compile) float32: {scoring['float32_xla_speedup']} x graph float32 per run; "
        f"tokenizer: {scoring['tokenizer_share_of_float32']:.1%} of a float32 pass"
    )
    for precision, profile in scoring["op_time"].items():
        shares = ", ".join(f"{kind} {share:.1%}" for kind, share in profile["share"].items())
        lines.append(f"op time, {precision}: {shares}")
    if "bert_training" in report:
        t = report["bert_training"]
        lines.append(
            f"training step (ms, batch of {t['step_breakdown_ms']['rows']}): "
            f"{t['step_breakdown_ms']}; "
            f"padding overhead {t['padding_overhead']:.1%}"
        )
    lstm = report["lstm_scoring"]
    lines.append(
        f"LSTM: {lstm['first_call_items_per_second']:.0f} headlines/s on a fresh model's first "
        f"call; time share when warm {lstm['time_share']}"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default=None, help="params file (default: the project's)")
    parser.add_argument(
        "--rows", type=int, default=0, help="score only the first N headlines (0: all)"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="score the corpus this many times over"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs, each of --rounds rounds")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bound/score rounds")
    parser.add_argument(
        "--train-rows", type=int, default=512, help="training headlines per round (0: skip)"
    )
    parser.add_argument("--train-rounds", type=int, default=2)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "metrics" / "bench_throughput.json"))
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    report = run(args)
    write_bench(args.out, {SECTION: report})
    print(render(report))


if __name__ == "__main__":
    main()
