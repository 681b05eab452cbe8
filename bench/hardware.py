"""What the hardware can do and what a headline costs: the bound every throughput is compared with.

- `matmul_gflops`: TensorFlow's own matrix multiply (4096x384 by 384x1536, the shape of
  MiniLM's feed-forward layer over a batch of tokens) on whatever device TensorFlow
  places it, in float32 or bfloat16: the rate BERT's matmuls could run at, at best.
- `encoder_flops`: forward FLOPs of one headline through the encoder, from its config
  (layers, hidden, intermediate) and the headline's real WordPiece count with [CLS] and
  [SEP], attention's L^2 term included. Embedding lookups, layer norms, softmax and the
  classifier head are left out: the bound counts only the work a matmul must do.
- `Interleaved`: the machine is shared and its speed drifts up to 2x within minutes, so
  a bound measured minutes before a throughput says little. Rounds interleave the bound
  with each work (bound, A, bound, B, ..., bound); a run keeps the best of its rounds of
  each (the machine only ever runs slower than idle, never faster) and divides the work's
  best rate by the bound's best. Several runs give the spread; wall time and process CPU
  time are both kept.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fakenews.precision import BFLOAT16_CPU_FLAGS, cpu_flags

MATMUL_SHAPE = (4096, 384, 1536)  # rows (tokens), hidden, intermediate of MiniLM-L6


def machine() -> dict[str, Any]:
    """CPU count and affinity, the bfloat16 flags, TensorFlow's thread settings, any GPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    flags = cpu_flags()
    return {
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "bfloat16_flags": [f for f in (*BFLOAT16_CPU_FLAGS, "amx_tile") if f in flags],
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()
        or "default (all cores)",
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "device": tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        if gpus
        else "CPU",
    }


class MatmulBound:
    """Best-of-a-few timing of one matmul shape in one dtype; call it for GFLOPS now."""

    def __init__(
        self, dtype: str, shape: tuple[int, int, int] = MATMUL_SHAPE, reps: int = 8
    ) -> None:
        import tensorflow as tf

        rows, inner, cols = shape
        rng = tf.random.Generator.from_seed(0)
        self.a = tf.cast(rng.normal([rows, inner]), dtype)
        self.b = tf.cast(rng.normal([inner, cols]), dtype)
        self.flops = 2.0 * rows * inner * cols
        self.reps = reps
        self.matmul = tf.function(tf.matmul)
        self.matmul(self.a, self.b).numpy()  # trace and warm up

    def __call__(self, tries: int = 3) -> tuple[float, float]:
        """(GFLOPS by wall time, GFLOPS per process CPU second), best of `tries`."""
        wall, cpu = 0.0, 0.0
        for _ in range(tries):
            seconds, cpu_seconds = timed(self._run)
            wall = max(wall, self.flops * self.reps / seconds / 1e9)
            cpu = max(cpu, self.flops * self.reps / cpu_seconds / 1e9)
        return wall, cpu

    def _run(self) -> None:
        for _ in range(self.reps):
            out = self.matmul(self.a, self.b)
        out.numpy()


def timed(work: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds, all threads) of `work()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, max(time.process_time() - cpu, 1e-9)


def encoder_config(checkpoint: Path, layers: int | None) -> dict[str, int]:
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    return {
        "layers": int(layers or config["num_hidden_layers"]),
        "hidden": int(config["hidden_size"]),
        "intermediate": int(config["intermediate_size"]),
    }


def encoder_flops(lengths: np.ndarray, config: dict[str, int]) -> np.ndarray:
    """Forward FLOPs per headline of `lengths` word pieces ([CLS] and [SEP] included)."""
    lengths = np.asarray(lengths, dtype=float)
    hidden, inner = config["hidden"], config["intermediate"]
    dense = (
        2 * lengths * (4 * hidden * hidden + 2 * hidden * inner)
    )  # Q, K, V, output; FFN in and out
    attention = 4 * lengths**2 * hidden  # scores Q K^T and the weighted sum of V
    return config["layers"] * (dense + attention)


class Interleaved:
    """Runs of rounds (bounds, work A, bounds, work B, ..., bounds). In each run, a work's
    rate and a bound's GFLOPS are the best of the run's rounds, and the work's ratio to
    the bound is the quotient of the two bests."""

    def __init__(self, bounds: dict[str, MatmulBound], flops_per_item: float) -> None:
        self.bounds, self.flops_per_item = bounds, flops_per_item

    def measure(
        self, works: dict[str, Callable[[], Any]], items: int, rounds: int, runs: int = 1
    ) -> dict[str, dict[str, Any]]:
        for work in works.values():
            work()  # warm-up: tracing and first-call graph rewrites are not throughput
        per_run: dict[str, list[dict[str, float]]] = {name: [] for name in works}
        for _ in range(runs):
            best = self._run(works, items, rounds)
            for name in works:
                per_run[name].append(best[name])
        return {name: self._summary(figures) for name, figures in per_run.items()}

    def _run(
        self, works: dict[str, Callable[[], Any]], items: int, rounds: int
    ) -> dict[str, dict[str, float]]:
        rates = {name: (0.0, 0.0) for name in works}  # best (wall, CPU-time) items/s
        bounds = {name: (0.0, 0.0) for name in self.bounds}  # best (wall, CPU-time) GFLOPS
        self._probe(bounds)
        for _ in range(rounds):
            for name, work in works.items():
                seconds, cpu_seconds = timed(work)
                rates[name] = tuple(map(max, rates[name], (items / seconds, items / cpu_seconds)))
                self._probe(bounds)
        return {name: self._figures(rate, bounds) for name, rate in rates.items()}

    def _probe(self, bounds: dict[str, tuple[float, float]]) -> None:
        for name, bound in self.bounds.items():
            bounds[name] = tuple(map(max, bounds[name], bound()))

    def _figures(self, rate: tuple[float, float], bounds: dict) -> dict[str, float]:
        figures = {"items_per_second": rate[0]}
        for name, (wall, cpu) in bounds.items():
            figures[f"{name}_gflops"] = wall
            figures[f"ratio_{name}"] = rate[0] * self.flops_per_item / (wall * 1e9)
            figures[f"ratio_{name}_cpu_time"] = rate[1] * self.flops_per_item / (cpu * 1e9)
        return figures

    def _summary(self, runs: list[dict[str, float]]) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "items_per_second_best": round(max(r["items_per_second"] for r in runs), 1),
            "items_per_second": [round(r["items_per_second"], 1) for r in runs],
        }
        for name in self.bounds:
            ratios = [r[f"ratio_{name}"] for r in runs]
            summary[f"ratio_{name}"] = [round(x, 3) for x in ratios]
            summary[f"ratio_{name}_best"] = round(max(ratios), 3)
            summary[f"ratio_{name}_median"] = round(statistics.median(ratios), 3)
            summary[f"ratio_{name}_cpu_time_median"] = round(
                statistics.median(r[f"ratio_{name}_cpu_time"] for r in runs), 3
            )
            summary[f"{name}_gflops"] = [round(r[f"{name}_gflops"]) for r in runs]
        return summary
