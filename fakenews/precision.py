"""bfloat16 compute where the hardware has it, for BERT scoring and training.

TensorFlow's oneDNN graph rewrite `auto_mixed_precision_onednn_bfloat16` turns the
float32 MatMuls (and their gradients) of a graph into bfloat16 ones, keeping numerically
touchy ops (softmax, layer norm, reductions) and every variable in float32. It runs on
the graphs already inside a SavedModel, so a float32 model needs no rebuilding to be
scored in bfloat16. The rewrite is scoped: `bfloat16_compute()` sets it in the calling
thread's function-call options only, so other models in the same process stay float32.

It pays only on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16); anywhere
else bfloat16 would be emulated, slower than float32, so it is refused.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path

from fakenews.errors import PipelineError

PRECISIONS = ("float32", "bfloat16")
TRAINING_PRECISIONS = ("float32", "mixed_bfloat16")
# CPU flags (as /proc/cpuinfo names them) that give native bfloat16 dot products.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags; empty where /proc/cpuinfo does not exist."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def bfloat16_support() -> str | None:
    """What makes bfloat16 fast here (a CPU flag), or None when nothing does."""
    flags = cpu_flags()
    return next((flag for flag in BFLOAT16_CPU_FLAGS if flag in flags), None)


def check_precision(value: str, knob: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """`value` when it is allowed and, for a bfloat16 one, this machine can run it."""
    if value not in allowed:
        raise PipelineError(f"{knob} must be one of {', '.join(allowed)}, not {value!r}")
    if "bfloat16" in value:
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            raise PipelineError(
                f"{knob}: {value} is implemented for CPUs only (oneDNN's bfloat16 "
                f"rewrite), and a GPU is visible here; use float32"
            )
        if bfloat16_support() is None:
            raise PipelineError(
                f"{knob}: {value} needs a CPU with AVX512-BF16 or AMX-BF16 (flags "
                f"{' or '.join(BFLOAT16_CPU_FLAGS)} in /proc/cpuinfo), which this "
                f"one lacks; use float32"
            )
    return value


@contextlib.contextmanager
def bfloat16_compute(enabled: bool = True) -> Iterator[None]:
    """TF functions called in this block (this thread) run with the bfloat16 rewrite."""
    if not enabled:
        yield
        return
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    saved = ctx.function_call_options
    options = copy.copy(saved)
    config = config_pb2.ConfigProto.FromString(saved.config_proto_serialized)
    config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
        rewriter_config_pb2.RewriterConfig.ON
    )
    options.config_proto_serialized = config
    ctx.function_call_options = options
    try:
        yield
    finally:
        ctx.function_call_options = saved
