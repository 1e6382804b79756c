"""Who is training a run directory: the trainer's `run.lock`, read by any launcher.

The trainer holds an `fcntl.flock` on `RUN_DIR/run.lock` for the whole run and
writes `{"pid", "host", "started", "backend"}` into it (docs/run-directory.md).
A launcher on the same host can therefore follow and stop a run that another
launcher (or a shell) started. A lock whose flock is free, or whose pid is gone,
is stale. Runs written before the lock existed fall back on `run_start`'s pid.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket

from keras_gdfr.training.events import LOCK_FILE
from keras_gdfr.training.runlock import is_locked, read_lock
from launcher.runs import RunState, pid_alive


@dataclasses.dataclass(frozen=True)
class Owner:
    """The process that trains (or trained) a run directory."""

    pid: int
    host: str | None = None
    started: float | None = None
    backend: str | None = None
    source: str = LOCK_FILE
    """Where the pid comes from: `run.lock` or `run_start` (no lock file)."""

    @property
    def local(self) -> bool:
        """Whether the owner runs on this host (None host: assumed local)."""
        return self.host in (None, "", socket.gethostname())


def read_owner(run_dir: str | os.PathLike, state: RunState | None = None) -> Owner | None:
    """The lock file's owner, else the last `run_start`'s pid, else None."""
    data = read_lock(run_dir)
    if isinstance(data, dict) and isinstance(data.get("pid"), int):
        return Owner(int(data["pid"]), data.get("host"), data.get("started"), data.get("backend"))
    if state is not None and state.pid:
        return Owner(int(state.pid), backend=state.backend or None, source="run_start")
    return None


def owner_alive(run_dir: str | os.PathLike, owner: Owner | None) -> bool:
    """Whether `owner` is a live trainer on this host: its pid lives and, with a lock file, holds it."""
    if owner is None or not owner.local or not pid_alive(owner.pid):
        return False
    if owner.source == LOCK_FILE:
        return is_locked(run_dir)  # the flock is what counts: a pid can be reused
    return True


def signal_owner(owner: Owner, sig: signal.Signals) -> str:
    """Sends `sig` to the owner's pid; "" when it is gone or on another host."""
    if not owner.local:
        return ""
    try:
        os.kill(owner.pid, sig)
    except (ProcessLookupError, PermissionError):
        return ""
    return sig.name
