"""Where a TensorFlow workload's time goes: TensorFlow's profiler on one call, its ops'
time summed by kind.

The kinds follow the encoder (fakenews.hub.encoder): oneDNN's fused MatMul (+ BiasAdd,
GELU) kernels, attention's batched matmuls and softmax, the float32 layer norms and
residual adds (Mean, Sub, Square, Rsqrt, Mul, AddV2), dtype casts, head-splitting
transposes, and the tokenizer. Op times overlap when TensorFlow runs ops side by side, so
shares are of the summed op time, not of wall time.
"""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = {
    "dense matmuls (oneDNN fused)": ("_MklNativeFusedMatMul", "_MklFusedMatMul", "_MklMatMul"),
    "attention batch matmuls": (
        "_MklBatchMatMulV2",
        "_MklFusedBatchMatMulV2",
        "BatchMatMulV2",
        "_MklNativeBatchMatMulV2",
    ),
    "softmax": ("_MklSoftmax", "Softmax"),
    "layer norms and residual adds": (
        "Mean",
        "Sub",
        "Square",
        "SquaredDifference",
        "Rsqrt",
        "Mul",
        "AddV2",
        "RealDiv",
        "Sum",
    ),
    "dtype casts": ("Cast",),
    "transposes and copies": ("_MklTranspose", "Transpose", "Unpack", "ConcatV2", "Pack"),
    "embedding lookups": ("ResourceGather", "GatherV2"),
    "gelu outside a matmul": ("Erf", "Erfc", "Neg"),
}
SPANS = (" ", "$", "EagerLocalExecute")  # events that span other ops
TOKENIZER_OPS = ("Wordpiece", "RegexSplit", "CaseFold", "NormalizeUTF8", "RoundRobin", "Ragged")


def op_time_shares(work: Callable[[], Any]) -> dict[str, Any]:
    """Profile one `work()`: summed op seconds, and each kind's share of them."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            work()
        finally:
            tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    seconds: collections.Counter[str] = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # TensorFlow ops appear as "name:Type"; the executor's own events
                # ("Class::Method"), eager calls of whole functions and steps do not count
                if ":" in name and "::" not in name and not name.startswith(SPANS):
                    seconds[kind_of(name.rsplit(":", 1)[1])] += event.duration_ps / 1e12
    seconds.pop(None, None)
    total = sum(seconds.values())
    return {
        "op_seconds": round(total, 3),
        "share": {kind: round(s / total, 3) for kind, s in seconds.most_common()},
    }


def kind_of(op_type: str) -> str | None:
    for kind, types in KINDS.items():
        if op_type in types:
            return kind
    if op_type.startswith(TOKENIZER_OPS) or op_type.startswith("TFText"):
        return "tokenizer"
    if op_type in ("ReadVariableOp", "Identity", "Const", "NoOp", "_Arg", "_Retval"):
        return None  # bookkeeping, not work
    return "other"
