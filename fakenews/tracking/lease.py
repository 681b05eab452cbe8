"""The promotion lock: one promoter at a time per registered model, on any tracking server.

Why this lock. Promoters run wherever `dvc repro` runs: a teammate's laptop, CI, a
`dvc exp run -j 2` worker. A file lock serializes only processes on one machine and one
filesystem, not a laptop and CI sharing the team server. A PostgreSQL advisory lock
needs a database login that MLflow users do not have (the team server keeps it to
itself, fakenews.team.mlflow_auth), and the local server has no PostgreSQL. What every
promoter does share is the tracking server, so the lock lives there, as a lease:

- the lock of model M is the registered model `M.promotion-lock.<n>` with the highest
  generation n. Creating a registered model is atomic on every MLflow backend (the name
  is unique: SQLite and PostgreSQL alike refuse a second create, RESOURCE_ALREADY_EXISTS),
  and every user can read it (default_permission READ): the same lock for the local and
  the team server. Taking it is a create, which the team server allows admins and the
  role `creators` only (fakenews.team.mlflow_app), so a read-only user can neither
  promote nor hold a lock that makes promoters wait;
- acquire: while the highest generation is live, wait; else create generation n+1. Of
  contenders creating the same name one wins; the others wait for it;
- a lease is live until its holder releases it (deletes its own lock, or tags it
  released where it may not delete), its `lease.expires` time passes, or, on the holder's
  own host, its process is gone (so a SIGKILLed promoter's lock is broken at once there,
  and after LEASE_SECONDS elsewhere). A broken lease is never deleted by another: the
  next generation supersedes it, so two breakers cannot delete each other's locks;
- verified after write: the holder renews its lease before each registry write and
  checks that its generation is still the highest and still carries its token. A holder
  that stalled past its lease (and was superseded) stops before its next write; the
  next holder finishes or undoes what it left (fakenews.tracking.journal).
Clocks: `lease.expires` is the holder's clock, so hosts sharing a server should keep
their clocks within a fraction of LEASE_SECONDS (NTP does).
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
from mlflow.exceptions import MlflowException

from fakenews.errors import PipelineError

LEASE_SECONDS = 300.0  # a promotion's longest step (the champion's rescore) fits many times
WAIT_SECONDS = 900.0  # how long acquire waits for another promoter before it gives up
SUFFIX = ".promotion-lock."
TOKEN, HOST, PID, STARTED, EXPIRES, RELEASED = (
    "lease.token",
    "lease.host",
    "lease.pid",
    "lease.process_started",
    "lease.expires",
    "lease.released",
)


class LeaseLost(PipelineError):
    """This promoter's lease was superseded: another promoter judged it dead."""


@dataclass
class Lease:
    client: object
    model: str
    generation: int
    token: str

    @property
    def name(self) -> str:
        return lock_name(self.model, self.generation)

    def renew(self) -> None:
        """Extend the lease, then verify it is still ours and the newest: call before each
        registry write."""
        self.client.set_registered_model_tag(self.name, EXPIRES, f"{time.time() + LEASE_SECONDS}")
        self.verify()

    def verify(self) -> None:
        newest = _newest(self.client, self.model)
        if newest is None or newest.name != self.name or newest.tags.get(TOKEN) != self.token:
            raise LeaseLost(
                f"lost the promotion lock of {self.model!r} (lease {self.name}): another "
                "promoter judged this one dead and took over; nothing more is written, and "
                "the next promotion finishes or undoes this one's"
            )


def lock_name(model: str, generation: int) -> str:
    return f"{model}{SUFFIX}{generation}"


def _generation(model: str, name: str) -> int | None:
    prefix = f"{model}{SUFFIX}"
    tail = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def _newest(client, model: str):
    """The lock model of the highest generation, or None."""
    found = client.search_registered_models(f"name LIKE '{model}{SUFFIX}%'", max_results=1000)
    generations = [(g, m) for m in found if (g := _generation(model, m.name)) is not None]
    return max(generations, key=lambda pair: pair[0])[1] if generations else None


def _process_alive(pid: int, started: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0  # not a reused pid
    except (psutil.Error, ValueError):
        return False


def live(tags: dict[str, str], now: float | None = None) -> bool:
    """Whether the lease these tags describe still holds (module docstring)."""
    if tags.get(RELEASED) == "true" or not tags.get(TOKEN):
        return False
    if float(tags.get(EXPIRES, "0")) <= (now or time.time()):
        return False
    if tags.get(HOST) == socket.gethostname():
        return _process_alive(int(tags.get(PID, "0")), float(tags.get(STARTED, "0")))
    return True


def _holder(tags: dict[str, str]) -> str:
    return f"pid {tags.get(PID)} on {tags.get(HOST)}"


def acquire(client, model: str, wait: float = WAIT_SECONDS) -> Lease:
    """The lease of `model`, once no other promoter holds it; PipelineError after `wait`
    seconds naming the holder."""
    token = uuid.uuid4().hex
    me = psutil.Process()
    deadline = time.monotonic() + wait
    while True:
        newest = _newest(client, model)
        if newest is None or not live(newest.tags):
            generation = (_generation(model, newest.name) if newest else 0) + 1
            tags = {
                TOKEN: token,
                HOST: socket.gethostname(),
                PID: str(me.pid),
                STARTED: str(me.create_time()),
                EXPIRES: str(time.time() + LEASE_SECONDS),
            }
            try:
                client.create_registered_model(
                    lock_name(model, generation),
                    tags=tags,
                    description=f"promotion lock of {model}: held while this exists "
                    "(fakenews.tracking.lease)",
                )
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            else:
                lease = Lease(client, model, generation, token)
                lease.verify()
                _tidy(client, model, generation)
                return lease
        elif time.monotonic() > deadline:
            raise PipelineError(
                f"the registered model {model!r} is being promoted by {_holder(newest.tags)} "
                f"(lock {newest.name}) and {wait:.0f} s passed; try again when it is done"
            )
        time.sleep(random.uniform(0.05, 0.25))


def release(lease: Lease) -> None:
    """Delete our lock (its creator may); where that is refused, tag it released."""
    try:
        lease.client.delete_registered_model(lease.name)
    except MlflowException:
        with contextlib.suppress(MlflowException):
            lease.client.set_registered_model_tag(lease.name, RELEASED, "true")


def _tidy(client, model: str, newest: int) -> None:
    """Delete superseded locks of dead holders where we may (our own user's, or any for an
    admin); others stay, harmless, below the newest generation."""
    found = client.search_registered_models(f"name LIKE '{model}{SUFFIX}%'", max_results=1000)
    for lock in found:
        generation = _generation(model, lock.name)
        if generation is not None and generation < newest:
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(lock.name)


@contextlib.contextmanager
def promotion_lock(client, model: str, wait: float = WAIT_SECONDS) -> Iterator[Lease]:
    """Hold the promotion lock of `model` for the block (module docstring)."""
    lease = acquire(client, model, wait)
    try:
        yield lease
    finally:
        release(lease)
