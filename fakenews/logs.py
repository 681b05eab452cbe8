"""Quiet, useful output: a stage prints its own summary lines, and the libraries under it
stay silent unless asked.

By default TensorFlow's C++ log (the CUDA probe on machines with no GPU, oneDNN notices,
graph-rewrite chatter), MLflow's INFO lines and run-URL banners, and progress bars written
to anything but a terminal are off. Python warnings that mean something (deprecations
aside) still show.

`--verbose` on any stage or tool, or FAKENEWS_LOG_LEVEL=debug in the environment, brings
all of it back. Settings read at import time (TF_CPP_MIN_LOG_LEVEL) are set as defaults
here, before TensorFlow is imported; values already in the environment win.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator

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
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if not any(isinstance(finder, _SilentTensorflowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SilentTensorflowImport())
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
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what C/C++ code writes to file descriptor 2 to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _SilentTensorflowImport(importlib.abc.MetaPathFinder):
    """Loading TensorFlow's native libraries prints notices (oneDNN, "could not find cuda
    drivers") straight to fd 2 before any log level applies: silence just that import."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and so that find_spec below finds the real one
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilencedLoader(spec.loader)
        return spec


class _SilencedLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        with native_stderr_silenced():
            self.inner.exec_module(module)
