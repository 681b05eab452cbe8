"""PID files that name one process, not one PID: the PID with its start time and executable.

A PID file outlives its process, and the kernel hands the PID to the next program that
starts. A file holding the PID alone, or checked against the command line (which any
program can imitate: `python -c ... mlflow server`), lets `stop` signal a stranger and
`status` vouch for one. So the file records what a reused PID cannot repeat: the
process's start time (to the kernel's clock tick) and the executable the kernel ran;
a process is ours only while all three still match.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from fakenews.errors import PipelineError
from fakenews.processes import alive, stop_group

# create_time is boot time + start ticks / CLK_TCK (1/100 s): equal for one process, and
# a new process with the same PID starts at least one tick later
_START_TOLERANCE = 0.005


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    started: float  # psutil create_time(): seconds since the epoch
    exe: str  # the executable the kernel ran (/proc/PID/exe)

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        proc = psutil.Process(pid)
        return cls(pid, proc.create_time(), proc.exe())

    def process(self) -> psutil.Process | None:
        """The live process this identity names, or None (gone, or its PID reused)."""
        try:
            proc = psutil.Process(self.pid)
            if not alive(proc):
                proc.wait(0)  # collect the exit status when it is our own child
                return None
            same = abs(proc.create_time() - self.started) < _START_TOLERANCE
            return proc if same and proc.exe() == self.exe else None
        except (psutil.Error, psutil.TimeoutExpired, OSError):
            return None


@dataclass(frozen=True)
class PidFile:
    """The identity of a detached server, kept in `path` as JSON."""

    path: Path

    def write(self, pid: int) -> ProcessIdentity:
        """Record `pid`, which must have exec'd its program already (Popen returns after
        the exec, so `spawn_detached`'s PID has)."""
        from fakenews.data.io import atomic_path  # imports pandas, which a status need not

        try:
            identity = ProcessIdentity.of(pid)
        except psutil.Error:
            raise PipelineError(f"process {pid} exited as soon as it started") from None
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(asdict(identity)) + "\n", encoding="utf-8")
        return identity

    def read(self) -> ProcessIdentity | None:
        """What the file records; None when there is no file or it is not ours (a bare
        PID, as older versions wrote, identifies nothing)."""
        try:
            return ProcessIdentity(**json.loads(self.path.read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def process(self) -> psutil.Process | None:
        identity = self.read()
        return identity.process() if identity else None

    def live(self) -> int | None:
        """The PID while the very process we started runs, else None."""
        proc = self.process()
        return proc.pid if proc else None

    def stop(self, what: str) -> bool:
        """Stop the process group (stop_group) and forget the PID; False if none of ours ran.
        A file naming anything else is removed and nothing is signalled."""
        pid = self.live()
        if pid is not None:
            stop_group(pid, what)
        self.path.unlink(missing_ok=True)
        return pid is not None
