"""Reading run directories (docs/run-directory.md) for the report and the sweep.

A run directory holds `recipe.json` + `events.jsonl` (and, when evaluated,
`eval.json`). `load_run` turns one into a `Run`; `find_runs` expands the paths a
user gives (run directories, or folders of them) and collects the ones it skips.
No keras code here.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import zipfile

from keras_gdfr.data.specs import DATASETS
from keras_gdfr.training.events import EVAL_FILE, EVENTS_FILE, RECIPE_FILE, is_run_dir, read_events
from keras_gdfr.training.schedule import PAPER_EPOCHS  # noqa: F401  (re-exported for the tables)


class RunDirError(ValueError):
    """A directory that is not a readable run directory."""


# Where a run_start field lives in a resolved recipe (keras_gdfr.training.recipe).
_RECIPE_KEYS = {
    "variant": ("model", "variant"),
    "dataset": ("data", "dataset"),
    "epochs": ("train", "epochs"),
    "backend": ("train", "backend"),
}


@dataclasses.dataclass
class Run:
    """One run directory, read.

    Attributes:
        path: the directory.
        recipe: the resolved recipe (`recipe.json`).
        events: every event of `events.jsonl`, in order.
        evaluation: `eval.json`, or None when absent or unreadable.
    """

    path: pathlib.Path
    recipe: dict
    events: list[dict]
    evaluation: dict | None = None

    def _of_kind(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]

    @property
    def run_start(self) -> dict:
        """The latest `run_start` (a resume writes another), or {}."""
        starts = self._of_kind("run_start")
        return starts[-1] if starts else {}

    @property
    def run_end(self) -> dict | None:
        """The latest `run_end`, or None while running (or after a crash)."""
        ends = self._of_kind("run_end")
        return ends[-1] if ends else None

    @property
    def epoch_ends(self) -> list[dict]:
        """One `epoch_end` per epoch, sorted; a resumed epoch keeps its latest record."""
        by_epoch = {e["epoch"]: e for e in self._of_kind("epoch_end") if "epoch" in e}
        return [by_epoch[k] for k in sorted(by_epoch)]

    def _field(self, name: str, default=None):
        """A field of the latest run_start, else of the recipe, else `default`."""
        value = self.run_start.get(name)
        if value is None:
            section, key = _RECIPE_KEYS.get(name, (None, name))
            tree = self.recipe.get(section, {}) if section else self.recipe
            value = tree.get(key) if isinstance(tree, dict) else None
        return default if value is None or value == "" else value

    @property
    def run_id(self) -> str:
        return str(self._field("run_id", self.path.name))

    @property
    def variant(self) -> str:
        return str(self._field("variant", "?"))

    @property
    def overrides(self) -> dict:
        """The recipe's model knob overrides (`[model.overrides]`), or {}."""
        model = self.recipe.get("model")
        overrides = model.get("overrides") if isinstance(model, dict) else None
        if not overrides and isinstance(self.run_start.get("recipe"), dict):
            overrides = (self.run_start["recipe"].get("model") or {}).get("overrides")
        return dict(overrides) if isinstance(overrides, dict) else {}

    @property
    def label(self) -> str:
        """The variant, with its overrides when it has any: 'net2 (depths=[1, 1, 1, 1])', and the
        trainer when it is not `gdfr train`: 'tiny [native-torch]' (bench/native_train.py)."""
        label = self.variant
        if self.overrides:
            label += " (" + ", ".join(f"{k}={v}" for k, v in self.overrides.items()) + ")"
        return f"{label} [{self.trainer}]" if self.trainer else label

    @property
    def trainer(self) -> str | None:
        """run_start's `trainer`: "native-torch" for the native control; None for `gdfr train`."""
        return self.run_start.get("trainer")

    @property
    def dataset(self) -> str:
        return str(self._field("dataset", "?"))

    @property
    def backend(self) -> str:
        return str(self._field("backend", "?"))

    @property
    def status(self) -> str:
        """`completed`, `interrupted`, `failed`, or `running/crashed` without a run_end."""
        end = self.run_end
        return str(end.get("status", "?")) if end else "running/crashed"

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def epochs_planned(self):
        return self._field("epochs")

    @property
    def epochs_trained(self) -> int:
        """Completed epochs: the run_end's count, else the last epoch_end seen."""
        end = self.run_end
        if end and end.get("epoch") is not None:
            return int(end["epoch"])
        ends = self.epoch_ends
        return int(ends[-1]["epoch"]) if ends else 0

    @property
    def test_accuracy(self) -> float | None:
        """Test accuracy (fraction): eval.json's, else the run_end's `test`."""
        if self.evaluation and self.evaluation.get("accuracy") is not None:
            return float(self.evaluation["accuracy"])
        test = (self.run_end or {}).get("test") or {}
        value = test.get("accuracy")
        return None if value is None else float(value)

    @property
    def test_loss(self) -> float | None:
        """Test loss: eval.json's, else the run_end's `test`."""
        if self.evaluation and self.evaluation.get("loss") is not None:
            return float(self.evaluation["loss"])
        value = ((self.run_end or {}).get("test") or {}).get("loss")
        return None if value is None else float(value)

    @property
    def best_val_accuracy(self) -> float | None:
        """The run_end's best validation accuracy, else the best epoch_end's."""
        value = (self.run_end or {}).get("best_val_accuracy")
        if value is None and self.epoch_ends:
            values = [e.get("val_accuracy") for e in self.epoch_ends if e.get("val_accuracy") is not None]
            value = max(values) if values else None
        return value

    params = property(lambda self: self.run_start.get("params"), doc="The run_start's parameter count.")
    macs = property(lambda self: self.run_start.get("macs"), doc="The run_start's MACs per image.")
    train_size = property(lambda self: self.run_start.get("train_size"), doc="Training images used.")
    test_size = property(lambda self: self.run_start.get("test_size"), doc="Test images used.")


def _find_value(tree, names: tuple[str, ...]):
    """The first value under any of `names` in a nested dict (depth-first)."""
    if isinstance(tree, dict):
        for name in names:
            if name in tree and not isinstance(tree[name], dict):
                return tree[name]
        for value in tree.values():
            found = _find_value(value, names)
            if found is not None:
                return found
    return None


_DATA_PATH_KEYS = ("data", "data_dir", "data_path", "path", "root", "imagefolder", "folder")


def data_path(recipe: dict) -> str | None:
    """The data location a recipe names (an ImageFolder dir or zip), if any.

    Looks for a string under the usual keys at the top level and in a `data` or
    `dataset` section; None means the dataset's own source (tfds or its archive).
    """
    sections = [recipe]
    for section in ("data", "dataset"):
        if isinstance(recipe.get(section), dict):
            sections.append(recipe[section])
    for section in sections:
        for key in _DATA_PATH_KEYS:
            value = section.get(key)
            if isinstance(value, str) and value.strip() and value not in DATASETS:
                return value
    return None


def _subset_note(run: Run, spec) -> str:
    """'2,000 of 50,000 train / 500 of 10,000 test images', or '' without sizes."""
    train, test = run.train_size, run.test_size
    if train is None and test is None:
        return ""
    parts = []
    for count, full, split in ((train, spec and spec.train_size, "train"), (test, spec and spec.test_size, "test")):
        if count is None:
            continue
        parts.append(f"{count:,} of {full:,} {split}" if full else f"{count:,} {split}")
    return " / ".join(parts) + " images"


def holds_jpeg_images(path) -> bool:
    """Whether an ImageFolder (directory or zip) holds JPEG files (`<split>/<class>/*.jpg`).

    False when the path is missing or unreadable (the run may come from another machine).
    """
    path = pathlib.Path(path)
    try:
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(name.lower().endswith((".jpg", ".jpeg")) for name in archive.namelist())
        if path.is_dir():
            return any(True for _ in itertools.islice(path.glob("*/*/*.[jJ][pP]*[gG]"), 1))
    except (OSError, zipfile.BadZipFile):
        return False
    return False


def describe_data(run: Run) -> str:
    """Where a run's images came from, in words, with the subset it used.

    The JPEG CIFAR-10 of shared/data (quality-75 re-encodings; recognised by its
    path, or by JPEG files in the ImageFolder) is flagged as landing about 1-2
    points below the lossless dataset.
    """
    spec = DATASETS.get(run.dataset)
    path = data_path(run.recipe)
    if path:
        lowered = path.lower()
        name = pathlib.Path(lowered).name
        named_jpeg = "jpeg" in name or "jpg" in name or "shared/data" in lowered
        if run.dataset == "cifar10" and (named_jpeg or holds_jpeg_images(path)):
            source = "JPEG CIFAR-10 (shared/data), ~1-2 points below lossless"
        elif "imagenette-mini" in lowered:
            source = "Imagenette mini (shared/data, 800 images): too small to measure accuracy"
        else:
            kind = _find_value(run.recipe, ("source",))
            source = f"data folder `{path}` (source {kind or 'auto'})"
    elif spec is not None:
        source = f"tfds `{spec.tfds_name}`" if spec.source == "tfds" else f"official {spec.source} archive"
    else:
        source = "unknown source"
    subset = _subset_note(run, spec)
    return f"{source}; {subset}" if subset else source


def _read_json(path: pathlib.Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# Fields the report computes with (docs/run-directory.md): numbers (or null where the contract allows,
# or "nan"/"inf" strings: events.jsonl writes non-finite floats so). A run whose field has another
# type is skipped with a line naming it, not a traceback that stops the whole report.
_NUMERIC_FIELDS = {
    "run_start": ("params", "macs", "epochs", "initial_epoch", "train_size", "test_size", "batch_size"),
    "epoch_end": ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"),
    "run_end": ("epoch", "seconds", "best_val_accuracy"),
}
_EVAL_NUMERIC = ("accuracy", "loss", "macro_auc", "num_examples")
_NON_FINITE = ("nan", "inf", "-inf")


def _is_number(value) -> bool:
    return value is None or value in _NON_FINITE or (isinstance(value, int | float) and not isinstance(value, bool))


def _wrongly_typed(events: list[dict], evaluation: dict | None) -> str | None:
    """What is wrongly typed ("a run_end event's epoch is 'two', not a number"), or None."""
    for event in events:
        for name in _NUMERIC_FIELDS.get(event.get("event"), ()):
            if not _is_number(event.get(name)):
                return f"{EVENTS_FILE}: a {event['event']} event's {name} is {event[name]!r}, not a number"
        test = event.get("test") if event.get("event") == "run_end" else None
        if test is not None and not (isinstance(test, dict) and all(_is_number(test.get(k)) for k in ("accuracy", "loss"))):
            return f"{EVENTS_FILE}: a run_end event's test is {test!r}, not {{accuracy, loss}} numbers"
    if evaluation is not None:
        for name in _EVAL_NUMERIC:
            if not _is_number(evaluation.get(name)):
                return f"{EVAL_FILE}: {name} is {evaluation[name]!r}, not a number"
    return None


def load_run(path) -> Run:
    """Read one run directory.

    Raises:
        RunDirError: when `recipe.json` or `events.jsonl` is missing or unreadable.
    """
    path = pathlib.Path(path)
    if not is_run_dir(path):
        raise RunDirError(f"{path} is not a run directory (needs recipe.json and events.jsonl)")
    try:
        recipe = _read_json(path / RECIPE_FILE)
        events = list(read_events(path / EVENTS_FILE))
    except (OSError, ValueError) as error:
        raise RunDirError(f"{path}: unreadable run directory ({error})") from error
    evaluation = None
    if (path / EVAL_FILE).is_file():
        try:
            evaluation = _read_json(path / EVAL_FILE)
        except (OSError, ValueError):
            evaluation = None
    if evaluation is not None and not isinstance(evaluation, dict):
        evaluation = None
    problem = _wrongly_typed(events, evaluation)
    if problem:
        raise RunDirError(f"{path}: {problem} (fix or remove it to report this run)")
    return Run(path=path, recipe=recipe if isinstance(recipe, dict) else {}, events=events, evaluation=evaluation)


def find_runs(paths) -> tuple[list[Run], list[str]]:
    """Runs under the given paths, and a message for each directory skipped.

    Each path is a run directory or a folder whose immediate subfolders are run
    directories (e.g. a sweep's `runs/`). Runs are returned in the order found,
    subfolders sorted by name.
    """
    runs, skipped = [], []
    for path in map(pathlib.Path, paths):
        if is_run_dir(path):
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(
                p for p in path.iterdir()
                if p.is_dir() and ((p / RECIPE_FILE).exists() or (p / EVENTS_FILE).exists())
            )
        else:
            candidates = []
        if not candidates:
            skipped.append(f"{path}: no run directory here (needs recipe.json and events.jsonl)")
        for candidate in candidates:
            try:
                runs.append(load_run(candidate))
            except RunDirError as error:
                skipped.append(str(error))
    return runs, skipped
