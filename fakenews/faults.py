"""Fault injection: named points in the write and promotion protocols where a test (or
`make bench-faults`) can have this process SIGKILLed, to prove what a crash there leaves.

Set FAKENEWS_FAULT_POINT to a point's name (e.g. `atomic.aside`) in the environment of the
process under test; unset, every point is a no-op. SIGKILL, not an exception: nothing
after the point runs, no `finally`, no atexit, exactly as when the machine kills a process.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "FAKENEWS_FAULT_POINT"


def fault_point(name: str) -> None:
    """Die here, at once, when FAKENEWS_FAULT_POINT names this point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
