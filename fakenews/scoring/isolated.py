"""A pyfunc model run in a Python process of its own, with the code it was logged with.

A process that has imported this checkout's `fakenews` cannot load a model's logged copy
of it (Python keeps the first import), so a model whose logged code differs from the
checkout's is loaded in a child interpreter started in isolated mode (`python -I`: no
current folder or PYTHONPATH on its path), where the only `fakenews` is the model's own.
The child loads the model once and answers each predict call over a pipe: frames in,
frames out, pickled. Its stdout is the pipe; whatever it prints goes to its log, shown
when it fails.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import pandas as pd

from fakenews import TENSORFLOW_ENV
from fakenews.errors import PipelineError

CHILD = r"""
import os, pickle, sys
channel = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # stray prints go to the log, not into the pipe
import mlflow.pyfunc
try:
    model = mlflow.pyfunc.load_model(sys.argv[1])
    pickle.dump(("ready", None), channel)
except Exception as err:
    pickle.dump(("error", (type(err).__name__, str(err))), channel)
    raise SystemExit(1)
channel.flush()
requests = sys.stdin.buffer
while True:
    try:
        frame = pickle.load(requests)
    except EOFError:
        break
    try:
        answer = ("ok", model.predict(frame))
    except Exception as err:
        answer = ("error", (type(err).__name__, str(err)))
    pickle.dump(answer, channel)
    channel.flush()
"""


class IsolatedModel:
    """`predict` like a loaded pyfunc model, answered by a child process (module docstring)."""

    def __init__(self, model_dir: Path, why: str) -> None:
        import os

        self.model_dir, self.why = model_dir, why
        self._log = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", CHILD, str(model_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=model_dir,
            env={**os.environ, **TENSORFLOW_ENV},
        )
        weakref.finalize(self, _stop, self._proc)
        self._answer()  # "ready", or the load error

    def predict(self, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        try:
            pickle.dump(model_input, self._proc.stdin)
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child died; _answer says how
        return self._answer()

    def _answer(self):
        try:
            status, value = pickle.load(self._proc.stdout)
        except (EOFError, pickle.UnpicklingError):
            raise PipelineError(
                f"the model {self.model_dir} stopped in its own process ({self.why}), "
                f"exit status {self._proc.poll()}: {self._log_tail()}"
            ) from None
        if status == "error":
            kind, message = value
            if kind == "InvalidHeadlines":  # bad input, as the in-process model says it
                from fakenews.tracking.pyfunc import InvalidHeadlines

                raise InvalidHeadlines(message)
            raise PipelineError(
                f"the model {self.model_dir}, in its own process ({self.why}), failed: "
                f"{kind}: {message}"
            )
        return value

    def _log_tail(self, lines: int = 5) -> str:
        self._log.seek(0)
        tail = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        return " | ".join(tail[-lines:]) or "(no output)"

    def close(self) -> None:
        _stop(self._proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
