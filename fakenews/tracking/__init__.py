"""MLflow for the pipeline: the tracking server, stage runs and their lineage, the registry
and the pyfunc face of every model."""

import os

# No telemetry (read when mlflow is first imported), and fail within seconds rather than
# minutes of retries when the server goes away. Values already in the environment win.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
