"""The runs folder: one `RunRecord` per run directory, the `RunIndex` that refreshes them,
the output log's tail, the folder's sweep grid, and the labels that tell runs apart.

Pure Python (no Textual, no Keras), like `launcher.runs`, whose `RunState` each record folds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import threading
from typing import Any

from launcher.formatting import format_percent
from launcher.runs import EVAL, EVENTS, OUTPUT, RECIPE, SWEEP_MANIFEST, EventTail, RunState, as_int


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
        SweepCell(str(c["run_dir"]), str(c.get("recipe", "")), str(c.get("variant", "")), as_int(c.get("seed")))
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
