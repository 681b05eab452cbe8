"""The names of every MLflow tag the pipeline writes and reads, in one place: the stages
write them (fakenews.tracking.lineage, .experiment, .registry) and tools.trace reads them
back, so a renamed tag cannot leave a reader looking for the old name."""

# A run's code and inputs (fakenews.tracking.lineage.run_tags)
GIT_COMMIT = "git.commit"
GIT_DIRTY = "git.dirty"  # "true", "false" or "unknown"
GIT_BRANCH = "git.branch"
DVC_STAGE = "dvc.stage"
DVC_DEP_PREFIX = "dvc.dep."  # + the input's path as dvc.yaml spells it; value: its DVC md5
COMMAND = "command"
SOURCE_NAME = "mlflow.source.name"
DVC_EXP_NAME = "dvc.exp.name"  # set under `dvc exp run`
DVC_EXP_BASELINE = "dvc.exp.baseline_rev"

# The process that owns a run (fakenews.tracking.experiment)
PROCESS_HOST = "process.host"
PROCESS_PID = "process.pid"
PROCESS_STARTED = "process.started"
PROCESS_ENDED = "process.ended"
SWEEP = "sweep"
SWEEP_PARENT = "sweep.parent"
PARENT_RUN = "mlflow.parentRunId"

# A model, on its training run and on its registered versions
CONTENT_HASH = "model.content_hash"
FAMILY = "family"
TRAINING_RUN = "training_run_id"
SPLIT_HASH = "data.split_hash"
DATA_HASH = "data.ingested_hash"
PROMOTION_PREFIX = "promotion."  # + each field of the promotion decision

# An ensemble, on its run and its registered versions: one tag per member family
MEMBER_PREFIX = "member."  # + "<family>.run_id", "<family>.content_hash", "<family>.version"
