"""The params sections of the tools that are not DVC stages: batch scoring (`score:`, read
by tools.score) and the tracking server (`tracking:`, read by every stage and
tools.tracking_server). No stage depends on them, so changing one reruns nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from fakenews.data.fields import Positive, Section


class SparkParams(Section):
    master: str = "local[*]"
    tf_threads_per_worker: Positive = 1
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=lambda: {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": False,
            "spark.driver.memory": "2g",
        }
    )


Engine = Literal["in-process", "spark"]


class ScoreParams(Section):
    engine: Engine = "in-process"
    chunk_rows: Positive = 10000
    batch_size: Positive = 256
    spark: SparkParams = SparkParams()


_SWEEP_NAME = r"^[\w.:/ -]{1,200}$"


class TrackingParams(Section):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(5000, ge=1, le=65535)
    backend_store: str = "mlflow/mlflow.db"
    artifact_root: str = "mlflow/artifacts"
    experiment: str = Field("fake-news", min_length=1)
    sweep: Annotated[str, Field(pattern=_SWEEP_NAME)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_sweep_is_none(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("sweep") == "":
            return {**data, "sweep": None}
        return data
