"""The run-directory lock: one trainer per run directory (docs/run-directory.md).

The trainer flock()s (exclusive) the run directory itself, on a descriptor it keeps
open for the whole run: a user deleting or replacing `run.lock` cannot let a second
trainer in (a lock on that file could: the second one would lock a new file). The
kernel drops the flock when the process ends, however it ends, so a lock left by a
crash or SIGKILL is stale and the next trainer takes it over. `RUN_DIR/run.lock`
holds one JSON object {"pid", "host", "started", "backend"}: who holds it, for
messages and the TUI; it stays after exit (its content is history). No keras
import: the TUI reads this.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import socket
import time

from keras_gdfr.training.events import LOCK_FILE, first_run_start


class RunLocked(Exception):
    """The run directory is held by a live trainer; the message names it."""


def read_lock(run_dir) -> dict | None:
    """The lock file's JSON (the last trainer's pid, host, started, backend), or None."""
    try:
        payload = json.loads((pathlib.Path(run_dir) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def is_locked(run_dir) -> bool:
    """Whether a live process holds the run directory's lock (checked by trying to take it).

    The directory's flock is the lock; one on `run.lock` counts too (trainers before
    issue 24 locked the file).
    """
    run_dir = pathlib.Path(run_dir)
    return _held(run_dir, os.O_RDONLY | os.O_DIRECTORY) or _held(run_dir / LOCK_FILE, os.O_RDONLY)


def _held(path: pathlib.Path, flags: int) -> bool:
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock this probe took
    return False


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, int | float) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (started {when}, backend {holder.get('backend', '?')})"


class RunLock:
    """Hold `run_dir`'s lock from __enter__ to __exit__; raises RunLocked when a live trainer holds it."""

    def __init__(self, run_dir, backend: str):
        self.run_dir = pathlib.Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.backend = backend
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = read_lock(self.run_dir)
            who = describe(holder) if holder else f"another process (its {LOCK_FILE} is gone)"
            raise RunLocked(
                f"{self.run_dir}: run directory is in use by {who}; stop that run first (or wait for it to end)"
            ) from None
        self._fd = fd
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "backend": self.backend}
        try:
            self._write_holder(holder)
        except BaseException:
            self.release()
            raise

    def _write_holder(self, holder: dict) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, json.dumps(holder).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def run_backend(run_dir) -> str | None:
    """The backend a run started under (its first run_start), else its lock file's, else None."""
    start = first_run_start(run_dir)
    if start and isinstance(start.get("backend"), str):
        return start["backend"]
    backend = (read_lock(run_dir) or {}).get("backend")
    return backend if isinstance(backend, str) else None
