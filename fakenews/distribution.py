"""Data-parallel training through TensorFlow's distribution strategies.

`<stage>.distribution` in params.yaml:
- `none`: the default strategy, one device;
- `mirrored`: tf.distribute.MirroredStrategy, a replica on every local GPU or, with no GPU,
  on `<stage>.cpu_replicas` logical CPU devices (the same code path, testable on a laptop);
- `multi_worker`: tf.distribute.MultiWorkerMirroredStrategy; each process reads its place
  in the cluster from the TF_CONFIG environment variable and runs the same command. Its
  gRPC server listens on loopback only when every host in the cluster is this machine
  (fakenews.loopback); TensorFlow itself would listen on every interface.

Every replica sees an equal share of each global batch (`batch_size` stays the global
batch, so the same params train the same model up to the order of floating-point sums
and the dropout draws of each replica). Only the chief (task `chief`, or worker 0 when
the cluster has none) logs to MLflow and writes the stage's outputs; the other workers
take part in every collective step, then save into temporary folders that are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fakenews.data.sections import TrainingParams
from fakenews.errors import PipelineError
from fakenews.loopback import check_listeners, confine_to_loopback


def strategy_for(params: TrainingParams, stage: str):
    """The tf.distribute strategy `params.distribution` names. Call it before TensorFlow
    runs anything: logical CPU devices can only be made before the runtime starts."""
    if params.distribution == "multi_worker":
        confine_to_loopback()  # re-executes this stage when the cluster is this machine alone
    import tensorflow as tf

    if params.distribution == "none":
        return tf.distribute.get_strategy()
    if params.distribution == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy(_logical_cpus(params.cpu_replicas, stage))
    if "TF_CONFIG" not in os.environ:
        raise PipelineError(
            f"params.yaml: {stage}.distribution is multi_worker but TF_CONFIG "
            "is not set; give every worker the cluster and its own task "
            "(docs/distributed-training.md)"
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    check_listeners(stage)
    return strategy


def _logical_cpus(count: int, stage: str) -> list[str]:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError:  # the runtime already started in this process (e.g. a test's)
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise PipelineError(
                f"{stage}: cannot split the CPU into {count} devices after TensorFlow "
                "started; run the stage in a fresh process"
            ) from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def is_chief() -> bool:
    """True unless TF_CONFIG makes this process a worker other than the chief."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return (
        task.get("type") == "worker"
        and int(task.get("index", 0)) == 0
        and "chief" not in (config.get("cluster") or {})
    )


def replica_tags(strategy) -> dict[str, str]:
    """The run's record of how it trained: replicas in sync, across how many workers."""
    resolver = strategy.cluster_resolver  # None but for multi-worker strategies
    cluster = resolver.cluster_spec().as_dict() if resolver else {}
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", [])) or 1
    return {
        "distribution.replicas": str(strategy.num_replicas_in_sync),
        "distribution.workers": str(workers),
    }


@contextlib.contextmanager
def chief_only(chief: bool, context: contextlib.AbstractContextManager) -> Iterator[Any]:
    """`context` (e.g. the MLflow run) on the chief; None on the other workers."""
    if not chief:
        yield None
        return
    with context as value:
        yield value


def discard_outputs(model, input_spec) -> None:
    """What a non-chief worker does instead of publishing: save the model to a temporary
    folder (saving can run collective ops every worker must join) and delete it."""
    from fakenews.models.export import save_serving_model

    with tempfile.TemporaryDirectory(prefix="worker-model-") as work:
        save_serving_model(model, Path(work) / "saved_model", input_spec)
