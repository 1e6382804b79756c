"""The `events.jsonl` stream: the contract between training and its readers.

See docs/run-directory.md. Writers append one whole JSON line per event and
flush (and fsync) it at once, so a reader never sees half an event unless the
disk itself failed; readers ignore a last line that does not parse.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from collections.abc import Iterator

# The run directory's files (docs/run-directory.md): every reader and writer names them from here.
EVENTS_FILE = "events.jsonl"
RECIPE_FILE = "recipe.json"
EVAL_FILE = "eval.json"
MODEL_FILE = "model.keras"
CLASS_NAMES_FILE = "class_names.json"
OUTPUT_LOG = "output.log"
LOCK_FILE = "run.lock"  # flock()ed by the live trainer (keras_gdfr/training/runlock.py)
# In a runs folder: the grid of the `gdfr sweep` that wrote into it (docs/sweeps.md).
SWEEP_MANIFEST = "sweep.json"


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether `path` holds the two files that make a run directory."""
    path = pathlib.Path(path)
    return (path / RECIPE_FILE).is_file() and (path / EVENTS_FILE).is_file()


def _clean(value):
    """JSON-safe: numpy scalars to Python, NaN/inf to strings (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class EventWriter:
    """Appends events to `<run_dir>/events.jsonl`, one whole line per write(2), fsynced."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = pathlib.Path(run_dir) / EVENTS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A writer killed mid-line (or a full disk) left a line without its newline: end it, so the
        next event starts a line of its own (readers skip the torn one)."""
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.path, "rb") as file:
                file.seek(size - 1)
                if file.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def emit(self, event: str, **fields) -> dict:
        record = {"event": event, "time": time.time(), **_clean(fields)}
        # One write of one whole line, unbuffered: nothing is left in a buffer to fail again at close.
        os.write(self._fd, (json.dumps(record) + "\n").encode("utf-8"))
        os.fsync(self._fd)
        return record

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_events(run_dir: str | os.PathLike) -> Iterator[dict]:
    """The events of a run (its directory or its events file), in order, skipping a torn or unparsable line
    (half a line, a bad UTF-8 byte: that line only)."""
    path = pathlib.Path(run_dir)
    if path.is_dir():
        path = path / EVENTS_FILE
    with open(path, "rb") as file:  # bytes: a bad byte spoils its own line only
        for raw in file:
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                continue
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "event" in record:
                yield record


def first_run_start(run_dir) -> dict | None:
    """The run's first `run_start` event (its start; a resume writes another), or None."""
    try:
        return next((e for e in read_events(run_dir) if e["event"] == "run_start"), None)
    except OSError:
        return None
