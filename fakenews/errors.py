"""One error type for problems a user can fix, and the CLI wrapper that reports it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class PipelineError(Exception):
    """A problem with inputs, params or environment, explained in one paragraph.

    The message is shown to the user as is, without a traceback, so it must name
    the file, row or field at fault and say what to do about it.
    """


def cli_errors(func: F) -> F:
    """Turn PipelineError into a clean message on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PipelineError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
