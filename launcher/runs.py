"""Reading a run's events: the `events.jsonl` tail and the `RunState` its events build.

Pure Python (no Textual, no Keras): everything here follows
`docs/run-directory.md`, the only channel between `gdfr train` and the launcher.
An `EventTail` reads only the bytes appended since the last poll; `RunState`
folds those events (epochs, step points, status). `launcher.run_index` pairs the
two per run directory (`RunRecord`) and keeps one record per run of a runs folder
(`RunIndex`); `launcher.formatting` shows the numbers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Callable, Iterable

# The run directory's file names come from the contract's module (Keras-free).
from keras_gdfr.training.events import EVAL_FILE as EVAL  # noqa: E402
from keras_gdfr.training.events import EVENTS_FILE as EVENTS  # noqa: E402
from keras_gdfr.training.events import OUTPUT_LOG as OUTPUT  # noqa: E402
from keras_gdfr.training.events import RECIPE_FILE as RECIPE  # noqa: E402
from keras_gdfr.training.events import SWEEP_MANIFEST  # noqa: E402
from keras_gdfr.training.schedule import lr_at_epoch  # noqa: E402
from launcher.formatting import format_duration  # noqa: E402

FINAL_STATUSES = ("completed", "interrupted", "failed")
"""The `status` values of a `run_end` event."""


class EventTail:
    """Reads the complete lines appended to an `events.jsonl` since the last read.

    A last line without its newline (a writer still writing it, or killed
    mid-line) stays unread until it is complete. A complete line that does not
    parse as a JSON object is counted in `bad_lines` and skipped.

    Args:
        path: the `events.jsonl` file; it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)
        self.offset = 0
        self.bad_lines = 0

    def read_new(self) -> list[dict]:
        """The events of the complete lines written since the last call.

        Raises:
            OSError: when the file exists but cannot be read. A missing file
                reads as no events.
        """
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self.offset:  # truncated or replaced: start over
                    self.offset = 0
                handle.seek(self.offset)
                chunk = handle.read(size - self.offset)
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in chunk[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(event, dict) and "event" in event:
                events.append(event)
            else:
                self.bad_lines += 1
        return events


@dataclasses.dataclass
class EpochRecord:
    """The metrics of one `epoch_end` event."""

    epoch: int
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    lr: float | None = None
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class StepPoint:
    """One `progress` event: `x` is the fractional epoch (`epoch - 1 + step / steps`)."""

    x: float
    loss: float | None
    accuracy: float | None
    time: float | None
    epoch: int
    step: int


def _xy(points, x: str, metric: str) -> tuple[list, list[float]]:
    """(x values, metric values) of `points`, skipping points without that metric."""
    pairs = [(getattr(p, x), getattr(p, metric)) for p in points if getattr(p, metric) is not None]
    return [a for a, _ in pairs], [b for _, b in pairs]


@dataclasses.dataclass
class RunState:
    """What the events of one run directory say about it, folded in order.

    `status` is `"starting"` before any `run_start`, `"running"` after one, and
    the `run_end` status (`completed`, `interrupted`, `failed`) after that; a
    resume's `run_start` sets it back to `"running"`.
    """

    run_id: str = ""
    variant: str = ""
    dataset: str = ""
    backend: str = ""
    params: int | None = None
    macs: int | None = None
    epochs: int | None = None
    initial_epoch: int = 0
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    train_size: int | None = None
    test_size: int | None = None
    pid: int | None = None
    devices: list | None = None
    replicas: int | None = None
    """Data-parallel replicas (`run_start` of docs/distributed.md), with the fields below."""
    processes: int | None = None
    per_device_batch: float | None = None
    distribution: str | None = None
    recipe: dict | None = None
    status: str = "starting"
    started: float | None = None
    first_time: float | None = None
    """The first event's time: when a run that failed before `run_start` happened."""
    segment_start: float | None = None
    last_time: float | None = None
    epoch: int = 0
    progress_epoch: int | None = None
    step: int = 0
    steps: int | None = None
    train_loss: float | None = None
    train_accuracy: float | None = None
    lr: float | None = None
    history: dict[int, EpochRecord] = dataclasses.field(default_factory=dict)
    steps_log: list[StepPoint] = dataclasses.field(default_factory=list)
    """Every `progress` event, as (fractional epoch, loss, accuracy, time): the step-level curves."""
    errors: list[dict] = dataclasses.field(default_factory=list)
    end: dict | None = None
    events: int = 0
    segments: int = 0
    """Process starts (`run_start` events): 2 and more for a resumed run."""
    ended_seconds: float = 0.0
    """The training time of the segments that ended (`run_end`'s `seconds`; a killed one: its events' span)."""

    def apply(self, event: dict) -> None:
        """Folds one event into the state; unknown event types are ignored."""
        self.events += 1
        kind = event.get("event")
        when = _number(event.get("time"))
        if kind == "run_start" and self.segment_start is not None and self.end is None and self.last_time:
            self.ended_seconds += max(0.0, self.last_time - self.segment_start)  # a segment killed without run_end
        if when is not None:
            self.last_time = when
            if self.first_time is None:
                self.first_time = when
        if kind == "run_start":
            for field in (
                "run_id", "variant", "dataset", "backend", "params", "macs",
                "epochs", "steps_per_epoch", "batch_size", "train_size",
                "test_size", "pid", "recipe", "devices",
                "replicas", "processes", "per_device_batch", "distribution",
            ):
                if event.get(field) is not None:
                    setattr(self, field, event[field])
            self.initial_epoch = int(event.get("initial_epoch") or 0)
            self.epoch = max(self.epoch, self.initial_epoch)
            self.status = "running"
            self.end = None
            self.progress_epoch = None
            self.step = 0
            self.steps = self.steps_per_epoch
            # A resumed segment starts clean: no step, loss or ETA of the segment before.
            self.train_loss = self.train_accuracy = None
            self.steps_log = [p for p in self.steps_log if p.x <= self.initial_epoch]
            if self.started is None:
                self.started = when
            self.segment_start = when
            self.segments += 1
        elif kind == "progress":
            self.progress_epoch = as_int(event.get("epoch"))
            self.step = as_int(event.get("step")) or 0
            self.steps = as_int(event.get("steps")) or self.steps
            self.train_loss = _number(event.get("loss"))
            self.train_accuracy = _number(event.get("accuracy"))
            if self.progress_epoch is not None and self.steps:
                x = self.progress_epoch - 1 + self.step / self.steps
                self.steps_log.append(StepPoint(x, self.train_loss, self.train_accuracy, when, self.progress_epoch, self.step))
        elif kind == "epoch_end":
            epoch = as_int(event.get("epoch")) or (self.epoch + 1)
            record = EpochRecord(
                epoch=epoch,
                **{
                    key: _number(event.get(key))
                    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
                },
            )
            self.history[epoch] = record
            self.epoch = max(self.epoch, epoch)
            if event.get("epochs") is not None:
                self.epochs = event["epochs"]
            self.lr = record.lr
            self.progress_epoch = None
            self.step = 0
        elif kind == "error":
            self.errors.append(event)
        elif kind == "run_end":
            if self.end is None and self.segment_start is not None:  # one run_end per segment counts
                seconds = _number(event.get("seconds"))
                self.ended_seconds += seconds if seconds is not None else max(0.0, (when or 0) - self.segment_start)
            self.end = event
            self.status = str(event.get("status") or "failed")
            if as_int(event.get("epoch")) is not None:
                self.epoch = max(self.epoch, as_int(event["epoch"]))

    def apply_all(self, events: Iterable[dict]) -> None:
        """Folds several events, in order."""
        for event in events:
            self.apply(event)

    # Derived facts -----------------------------------------------------------

    @property
    def total_seconds(self) -> float | None:
        """The training time of every segment of the run (a resumed run: all its processes), pauses left out."""
        if self.segments == 0:
            return _number((self.end or {}).get("seconds"))
        running = 0.0 if self.end is not None else max(0.0, (self.last_time or 0) - (self.segment_start or 0))
        return self.ended_seconds + running

    def total_time_text(self) -> str:
        """`3m48s` or, for a resumed run, `3m48s in 2 segments`."""
        text = format_duration(self.total_seconds)
        return f"{text} in {self.segments} segments" if self.segments > 1 else text

    @property
    def training_lr(self) -> float | None:
        """The learning rate of the epoch being trained, by `run_start`'s recipe schedule.

        `epoch_end`'s `lr` is the rate of the epoch that ended, one epoch late while
        the next one trains: it is kept for a run that is not running (its last epoch's
        rate) and for a recipe without a schedule.
        """
        train = (self.recipe or {}).get("train") or {}
        if self.status != "running" or not isinstance(train, dict) or "lr" not in train or not self.epochs:
            return self.lr
        epoch = min(self.progress_epoch or self.epoch + 1, int(self.epochs))
        try:
            return lr_at_epoch(epoch, lr=float(train["lr"]), milestones=train.get("milestones") or (),
                               gamma=float(train.get("lr_gamma", 1.0)))
        except (TypeError, ValueError):
            return self.lr

    @property
    def epochs_list(self) -> list[EpochRecord]:
        """The completed epochs, in epoch order."""
        return [self.history[key] for key in sorted(self.history)]

    def series(self, metric: str) -> tuple[list[int], list[float]]:
        """(epochs, values) of one `EpochRecord` metric, skipping missing values."""
        return _xy(self.epochs_list, "epoch", metric)

    @property
    def best_accuracy(self) -> float | None:
        """The best validation accuracy: `run_end`'s, or the best epoch's."""
        # The trainer writes -1 for "no epoch yet" (a run stopped in its first epoch).
        best = _number((self.end or {}).get("best_val_accuracy"))
        if best is not None and best >= 0:
            return best
        _, values = self.series("val_accuracy")
        return max(values) if values else None

    @property
    def best_epoch(self) -> int | None:
        """The epoch of the best validation accuracy (the first one that reached it)."""
        epochs, values = self.series("val_accuracy")
        return epochs[values.index(max(values))] if values else None

    def step_series(self, metric: str) -> tuple[list[float], list[float]]:
        """(fractional epochs, values) of the `progress` events' `loss` or `accuracy`."""
        return _xy(self.steps_log, "x", metric)

    def images_per_second(self) -> float | None:
        """Training throughput from the last two `progress` events of the same epoch."""
        points = self.steps_log[-2:]
        if len(points) < 2 or not self.batch_size:
            return None
        a, b = points
        if a.epoch != b.epoch or b.step <= a.step or a.time is None or b.time is None or b.time <= a.time:
            return None
        return (b.step - a.step) * self.batch_size / (b.time - a.time)

    @property
    def final_accuracy(self) -> float | None:
        """The last completed epoch's validation accuracy."""
        _, values = self.series("val_accuracy")
        return values[-1] if values else None

    @property
    def test_accuracy(self) -> float | None:
        """The end-of-run evaluation's accuracy, when `run_end` carries one."""
        test = (self.end or {}).get("test")
        return _number(test.get("accuracy")) if isinstance(test, dict) else None

    @property
    def error_message(self) -> str | None:
        """The last `error` event's message, as `kind: message`."""
        if not self.errors:
            return None
        error = self.errors[-1]
        kind, message = error.get("kind"), str(error.get("message", "")).strip()
        return f"{kind}: {message}" if kind else message

    @property
    def mean_epoch_seconds(self) -> float | None:
        """Mean wall time of the completed epochs."""
        seconds = [r.seconds for r in self.history.values() if r.seconds is not None]
        return sum(seconds) / len(seconds) if seconds else None

    @property
    def epoch_fraction(self) -> float:
        """How far the epoch in progress is, from the last `progress` event."""
        if self.progress_epoch is None or not self.steps:
            return 0.0
        return min(1.0, max(0.0, self.step / self.steps))

    def eta_seconds(self, status: str | None = None) -> float | None:
        """Seconds left, estimated from the events alone (never the wall clock).

        Uses the mean epoch time, or while the first epoch runs, the rate of its
        `progress` events since `run_start`. None when finished or unknown, or
        when `status` (what the screen shows, e.g. `crashed`) is not running.
        """
        if self.status != "running" or not self.epochs or (status is not None and status != "running"):
            return None
        per_epoch = self.mean_epoch_seconds
        fraction = self.epoch_fraction
        if per_epoch is None:
            if fraction <= 0 or self.segment_start is None or self.last_time is None:
                return None
            per_epoch = (self.last_time - self.segment_start) / fraction
        remaining = max(0.0, self.epochs - self.epoch - fraction)
        return remaining * per_epoch

    def effective_status(self, alive: Callable[[int], bool] | None = None) -> str:
        """`status`, except a `"running"` run whose process is gone is `"crashed"`.

        Args:
            alive: tells whether a pid is a live process; defaults to
                `pid_alive`. A run without a pid is taken as alive.
        """
        if self.status == "running" and self.pid:
            if not (alive or pid_alive)(int(self.pid)):
                return "crashed"
        return self.status


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 probe)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


# Event values --------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def as_int(value: Any) -> int | None:
    """An event's integer field, or None (missing, a bool, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)
