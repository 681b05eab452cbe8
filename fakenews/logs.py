"""Quiet, useful output: a stage prints its own summary lines, and the libraries under it
stay silent unless asked.

By default TensorFlow's C++ log (the CUDA probe on machines with no GPU, oneDNN notices,
graph-rewrite chatter), MLflow's INFO lines and run-URL banners, its "add type hints"
advice, and progress bars written to anything but a terminal are off. Python warnings
that mean something (deprecations aside) still show.

`--verbose` on any stage or tool, or FAKENEWS_LOG_LEVEL=debug in the environment, brings
all of it back. Settings read at import time (TF_CPP_MIN_LOG_LEVEL) are set as defaults
here, before TensorFlow is imported; values already in the environment win.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

LOG_LEVEL_ENV = "FAKENEWS_LOG_LEVEL"
_QUIET_LOGGERS = ("mlflow", "alembic", "urllib3", "absl", "h5py", "git")


def verbose() -> bool:
    return os.environ.get(LOG_LEVEL_ENV, "").lower() in ("debug", "verbose")


def quiet_defaults() -> None:
    """Environment defaults read by TensorFlow and MLflow when they are first imported."""
    if verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    # 3 hides C++ ERROR lines too: on a CPU-only machine those are the cuInit probe and
    # harmless grappler notices; real failures still surface as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if not sys.stderr.isatty():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("TQDM_DISABLE", "1")


def configure(verbose_flag: bool = False) -> None:
    """Apply the output settings in this process; `verbose_flag` is a CLI's --verbose."""
    if verbose_flag:
        os.environ[LOG_LEVEL_ENV] = "debug"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if verbose():
        logging.basicConfig(level=logging.INFO)
        return
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # We log every model with an explicit signature, so the advice does not apply.
    warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel(logging.ERROR)
