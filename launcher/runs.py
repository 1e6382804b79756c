"""Reading run directories: the `events.jsonl` tail, a run's state, the runs folder.

Pure Python (no Textual, no Keras): everything here follows
`docs/run-directory.md`, the only channel between `gdfr train` and the launcher.
A `RunRecord` pairs an `EventTail` (which reads only the bytes appended since the
last poll) with the `RunState` those events build; a `RunIndex` keeps one record
per run directory of a runs folder, so refreshing it re-reads only what is new.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import threading
from typing import Any, Callable, Iterable

# The run directory's file names come from the contract's module (Keras-free).
from keras_gdfr.training.events import EVAL_FILE as EVAL  # noqa: E402
from keras_gdfr.training.events import EVENTS_FILE as EVENTS  # noqa: E402
from keras_gdfr.training.events import OUTPUT_LOG as OUTPUT  # noqa: E402
from keras_gdfr.training.events import RECIPE_FILE as RECIPE  # noqa: E402
from keras_gdfr.training.events import SWEEP_MANIFEST  # noqa: E402
from keras_gdfr.training.schedule import lr_at_epoch  # noqa: E402

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
            self.progress_epoch = _int(event.get("epoch"))
            self.step = _int(event.get("step")) or 0
            self.steps = _int(event.get("steps")) or self.steps
            self.train_loss = _number(event.get("loss"))
            self.train_accuracy = _number(event.get("accuracy"))
            if self.progress_epoch is not None and self.steps:
                x = self.progress_epoch - 1 + self.step / self.steps
                self.steps_log.append(StepPoint(x, self.train_loss, self.train_accuracy, when, self.progress_epoch, self.step))
        elif kind == "epoch_end":
            epoch = _int(event.get("epoch")) or (self.epoch + 1)
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
            if _int(event.get("epoch")) is not None:
                self.epoch = max(self.epoch, _int(event["epoch"]))

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


class RunRecord:
    """One run directory: its event tail and the state folded from it.

    Args:
        path: the run directory.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)
        self.tail = EventTail(self.path / EVENTS)
        self.state = RunState()

    @property
    def name(self) -> str:
        """The run's id, or the directory name before `run_start`."""
        return self.state.run_id or self.path.name

    def poll(self) -> list[dict]:
        """Reads and folds the new events; returns them.

        Raises:
            OSError: when `events.jsonl` exists but cannot be read.
        """
        events = self.tail.read_new()
        self.state.apply_all(events)
        return events

    def eval(self) -> dict | None:
        """`eval.json`, or None when absent or unreadable."""
        return read_json(self.path / EVAL)

    def recipe(self) -> dict:
        """The run's recipe: `run_start`'s, else `recipe.json` (a run that failed before starting)."""
        if isinstance(self.state.recipe, dict) and self.state.recipe:
            return self.state.recipe
        if not hasattr(self, "_recipe_file"):
            self._recipe_file = read_json(self.path / RECIPE)
        return self._recipe_file if isinstance(self._recipe_file, dict) else {}

    @property
    def variant(self) -> str:
        return self.state.variant or str(self.recipe().get("model", {}).get("variant") or "")

    @property
    def dataset(self) -> str:
        return self.state.dataset or str(self.recipe().get("data", {}).get("dataset") or "")

    @property
    def when(self) -> float:
        """When the run started: `run_start`, else its first event, else the directory's mtime."""
        if self.state.started or self.state.first_time:
            return float(self.state.started or self.state.first_time)
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0


def read_json(path: pathlib.Path) -> Any | None:
    """A JSON file's content, or None when missing, unreadable or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tail_lines(path: str | os.PathLike, lines: int = 40, max_bytes: int = 64 * 1024) -> list[str]:
    """The last `lines` lines of a text file, reading at most its last `max_bytes`.

    Carriage-return progress bars (Keras's) keep only their last state per line.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        if "\r" in line:
            parts = [p for p in line.split("\r") if p.strip()]
            line = parts[-1] if parts else ""
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return out[-lines:]


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A directory of the runs folder that is not a readable run, and why."""

    path: pathlib.Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path.name}: {self.reason}"


_RUN_MARKERS = (RECIPE, EVENTS, OUTPUT, "checkpoints", EVAL)


class RunIndex:
    """Every run directory directly under a runs folder, refreshed incrementally.

    A directory counts as a run when it holds `recipe.json` and `events.jsonl`;
    one that holds only some of a run's files, or whose events cannot be read,
    is reported in `refresh()`'s skipped list. Other directories are ignored.
    Safe to refresh from a worker thread.

    Args:
        folder: the runs folder; it need not exist.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = pathlib.Path(folder).absolute()
        self.records: dict[pathlib.Path, RunRecord] = {}
        self._lock = threading.Lock()

    def refresh(self) -> tuple[list[RunRecord], list[Skipped]]:
        """Re-lists the folder and reads each run's new events.

        Returns:
            The runs (sorted by run start, newest first) and the skipped
            directories.
        """
        with self._lock:
            skipped: list[Skipped] = []
            try:
                entries = sorted(p for p in self.folder.iterdir() if p.is_dir())
            except OSError:
                entries = []
            seen = set()
            for path in entries:
                reason = _not_a_run(path)
                if reason == "":
                    continue
                if reason:
                    skipped.append(Skipped(path, reason))
                    continue
                record = self.records.get(path) or RunRecord(path)
                try:
                    record.poll()
                except OSError as error:
                    skipped.append(Skipped(path, f"events.jsonl unreadable ({error.strerror or error})"))
                    self.records.pop(path, None)
                    continue
                if record.state.events == 0 and record.tail.bad_lines:
                    skipped.append(Skipped(path, "events.jsonl has no readable events"))
                    self.records.pop(path, None)
                    continue
                self.records[path] = record
                seen.add(path)
            for path in list(self.records):
                if path not in seen:
                    del self.records[path]
            runs = sorted(self.records.values(), key=lambda r: (r.when, r.path.name), reverse=True)
            return runs, skipped


def _not_a_run(path: pathlib.Path) -> str | None:
    """None for a run directory, a reason for a half-written one, "" for others."""
    try:
        present = {name for name in _RUN_MARKERS if (path / name).exists()}
    except OSError as error:
        return f"unreadable ({error})"
    if not present:
        return ""
    if EVENTS not in present:
        return "no events.jsonl"
    if RECIPE not in present:
        return "no recipe.json"
    if not os.access(path / EVENTS, os.R_OK):
        return "events.jsonl unreadable (permission denied)"
    return None


# Sweeps --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepCell:
    """One cell of a `gdfr sweep` grid: its run directory's name, recipe, variant and seed."""

    run_dir: str
    recipe: str
    variant: str
    seed: int | None = None


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The grid of the sweep that wrote into a runs folder (its `sweep.json`)."""

    name: str
    cells: tuple[SweepCell, ...]

    def __contains__(self, path: pathlib.Path) -> bool:
        return any(cell.run_dir == pathlib.Path(path).name for cell in self.cells)


def read_sweep(folder: str | os.PathLike) -> Sweep | None:
    """The runs folder's sweep, or None (no sweep.json, or one that does not parse)."""
    document = read_json(pathlib.Path(folder) / SWEEP_MANIFEST)
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        return None
    cells = tuple(
        SweepCell(str(c["run_dir"]), str(c.get("recipe", "")), str(c.get("variant", "")), _int(c.get("seed")))
        for c in document["cells"] if isinstance(c, dict) and c.get("run_dir")
    )
    return Sweep(str(document.get("name") or "sweep"), cells)


def sweep_grid(sweep: Sweep, status: dict[str, tuple[str, "RunRecord"]]) -> list[str]:
    """The sweep as text: a header with its counts, then one line per recipe x variant with each seed's cell.

    Args:
        status: run directory name -> (shown status, record) for the cells that have a run directory;
            the others are `pending`.
    """
    rows: dict[tuple[str, str], list[str]] = {}
    completed = 0
    for cell in sweep.cells:
        shown, record = status.get(cell.run_dir, ("pending", None))
        completed += shown == "completed"
        if shown == "completed" and record is not None and record.state.test_accuracy is not None:
            shown = format_percent(record.state.test_accuracy)
        elif record is not None and shown == "running" and record.state.epochs:
            shown = f"running {record.state.epoch}/{record.state.epochs}"
        seed = "" if cell.seed is None else f"s{cell.seed} "
        rows.setdefault((cell.recipe, cell.variant), []).append(f"{seed}{shown}")
    lines = [f"sweep {sweep.name}: {completed}/{len(sweep.cells)} completed"]
    width = max((len(f"{r} {v}") for r, v in rows), default=0)
    lines += [f"{f'{recipe} {variant}':{width}s}  " + " · ".join(cells) for (recipe, variant), cells in rows.items()]
    return lines


# Run labels ----------------------------------------------------------------------

# Keys that differ between runs without telling them apart (names, paths, the seed of a repeat).
_LABEL_IGNORED = ("run.", "data.data_dir", "data.source")


def flat_settings(document: dict, prefix: str = "") -> dict[str, str]:
    """A recipe dict as {"train.lr": "0.05", ...} (lists as `[a, b]`)."""
    out: dict[str, str] = {}
    for key, value in (document or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_settings(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, tuple, bool)) or value is None else str(value)
    return out


def differing_settings(recipes: list[dict]) -> list[dict[str, str]]:
    """For each recipe, the settings whose values are not the same in all of `recipes`."""
    flats = [flat_settings(recipe) for recipe in recipes]
    keys = sorted({key for flat in flats for key in flat if not key.startswith(_LABEL_IGNORED)})
    differing = [k for k in keys if len({flat.get(k) for flat in flats}) > 1]
    return [{k: flat.get(k, "-") for k in differing} for flat in flats]


def short_key(key: str) -> str:
    """`model.overrides.widths` -> `widths`, `train.lr` -> `lr`, `data.limit_train` -> `limit_train`."""
    return key.rsplit(".", 1)[-1]


def run_labels(records: list["RunRecord"]) -> dict[pathlib.Path, str]:
    """Readable labels: `tiny 11-28 07:15 lr=0.05` - the variant, a short start time, and
    the settings that differ from the other runs of the same variant and dataset."""
    import datetime

    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.variant, record.dataset), []).append(record)
    labels = {}
    for group in groups.values():
        diffs = differing_settings([r.recipe() for r in group]) if len(group) > 1 else [{}] * len(group)
        for record, diff in zip(group, diffs):
            when = datetime.datetime.fromtimestamp(record.when).strftime("%m-%d %H:%M") if record.when else "?"
            extra = " ".join(f"{short_key(k)}={v}" for k, v in diff.items() if short_key(k) not in ("variant",))
            labels[record.path] = " ".join(part for part in (record.variant or "?", when, extra) if part)
    return labels


# Formatting ----------------------------------------------------------------------


def format_percent(value: float | None, digits: int = 1) -> str:
    """`0.4123` -> `"41.2%"`; None -> `"-"`."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{100 * value:.{digits}f}%"


def format_count(value: float | None) -> str:
    """A parameter or MAC count with a unit: `812345` -> `"0.81 M"`, `2.56e9` -> `"2.56 G"`."""
    if value is None:
        return "-"
    value = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale or (unit == "M" and abs(value) >= 1e5):
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def format_duration(seconds: float | None) -> str:
    """`3725` -> `"1h 02m"`, `65` -> `"1m 05s"`, `4.2` -> `"4.2s"`; None -> `"-"`."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_number(value: float | None, digits: int = 4) -> str:
    """A loss or learning rate, compact: `0.1` -> `"0.1"`, `1.93456` -> `"1.935"`."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.{digits}g}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)
