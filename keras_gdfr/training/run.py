"""One training run: data, model, the paper's optimizer, `model.fit`, checkpoints, events.

`train(recipe, run_dir)` starts a run; `resume(run_dir)` continues one from its
last checkpoint with weights, optimizer state, epoch and data order restored
(the input pipeline's epoch e depends only on (seed, e)). Everything a reader
needs goes into the run directory (docs/run-directory.md).

Why one file of ~670 lines: one run's life in the order it happens (data and model,
the stop request, the monitor callback, evaluation, the locked run directory,
resume), in sections marked with rule lines; what stands on its own lives beside
it (checkpoints.py, events.py, runlock.py, optimizer.py, schedule.py).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import pathlib
import signal
import sys
import time

import keras
import numpy as np

from keras_gdfr.counting import count_model
from keras_gdfr.data import device_pipeline, pipeline
from keras_gdfr.data.augment import Augmentation, prepared_nbytes
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.sources import load_dataset
from keras_gdfr.data.split import SplitData
from keras_gdfr.data.tf_runtime import TensorFlowMissing, tame_if_installed
from keras_gdfr import provenance
from keras_gdfr.models import GDFRNet
from keras_gdfr.saving import save_run_model
from keras_gdfr.training import checkpoints, distributed
from keras_gdfr.training.extend import extension_fields
from keras_gdfr.training.events import (
    EVAL_FILE, EVENTS_FILE, LOCK_FILE, MODEL_FILE, OUTPUT_LOG, RECIPE_FILE, EventWriter, first_run_start, read_events,
)
from keras_gdfr.training.optimizer import compile_for_training, optimizer_from_recipe
from keras_gdfr.training.recipe import Recipe
from keras_gdfr.training.runlock import RunLock, RunLocked, run_backend
from keras_gdfr.training.schedule import lr_at_epoch
from keras_gdfr.training.tensorboard import tensorboard_callback

PROGRESS_INTERVAL_S = 1.0


class RunError(Exception):
    """A run that cannot start or continue; the message names the offending input."""


class DiskFull(RunError):
    """The disk filled while the run wrote; temp files are gone and the last complete checkpoint is kept."""


def _disk_full(error: OSError, run_dir: pathlib.Path) -> DiskFull:
    done = _epochs_done(run_dir)
    kept = f"the last complete checkpoint (epoch {done}) is kept" if done else "no checkpoint was saved yet"
    where = error.filename or run_dir
    return DiskFull(
        f"{where}: disk full ({os.strerror(error.errno)}); {kept} and temp files were removed. "
        f"Free some space, then: gdfr train --resume {run_dir}"
    )


@dataclasses.dataclass
class RunResult:
    run_dir: pathlib.Path
    status: str  # completed | interrupted | failed
    epochs_done: int
    test: dict | None
    message: str | None = None  # why a failed run failed


# ---------------------------------------------------------------------------
# Run directory and inputs.


def default_run_dir(recipe: Recipe) -> pathlib.Path:
    name = recipe.run.name or f"{recipe.data.dataset}-{recipe.model.variant}-{time.strftime('%Y%m%d-%H%M%S')}"
    return pathlib.Path(recipe.run.dir) / name


def _input_shape(image_size: int) -> tuple[int, int, int]:
    if keras.config.image_data_format() == "channels_first":
        return (3, image_size, image_size)
    return (image_size, image_size, 3)


def _load_split(recipe: Recipe, split: str) -> SplitData:
    data = recipe.data
    loaded = load_dataset(
        data.dataset, split, limit=(data.limit_train if split == "train" else data.limit_test) or None,
        source=None if data.source == "auto" else data.source, data_dir=data.data_dir or None,
        classes=list(data.classes) or None, on_corrupt=data.on_corrupt,
    )
    if len(loaded) == 0:  # else Keras's "steps_per_epoch=0" error
        raise DataError(f"no readable images: {loaded.description}")
    return loaded


def load_test_split(recipe: Recipe) -> SplitData:
    """The recipe's test split alone (`gdfr eval`: no need to read the training images)."""
    return _load_split(recipe, "test")


def load_splits(recipe: Recipe) -> tuple[SplitData, SplitData]:
    """The recipe's train and test splits (limits, classes and corrupt-image policy applied)."""
    train, test = _load_split(recipe, "train"), _load_split(recipe, "test")
    check_same_classes(train, test)
    return train, test


def check_same_classes(train: SplitData, test: SplitData) -> None:
    """Labels are class indices in folder order: a renamed or missing test folder shifts them all."""
    if train.class_names == test.class_names:
        return
    only_train = sorted(set(train.class_names) - set(test.class_names))
    only_test = sorted(set(test.class_names) - set(train.class_names))
    differ = "; ".join(part for part in (
        f"only in train: {', '.join(only_train)}" if only_train else "",
        f"only in test: {', '.join(only_test)}" if only_test else "",
    ) if part) or "same names in another order"
    raise DataError(f"the train and test splits have different classes ({differ}); test data: {test.description}")


def augmentation(recipe: Recipe) -> Augmentation:
    """The recipe's `[augment]` keys as both input pipelines apply them."""
    a = recipe.augment
    return Augmentation.for_spec(recipe.spec, pad=a.pad, resize=a.resize, flip=a.flip, normalize=a.normalize)


def choose_input_pipeline(recipe: Recipe, images: int) -> tuple[str, str]:
    """("device" | "tf.data", why) for `images` prepared images (train + test) under `data.pipeline`."""
    nbytes = prepared_nbytes(images, augmentation(recipe).resize)
    return device_pipeline.choose_pipeline(recipe.data.pipeline, nbytes)


def input_data(recipe: Recipe, choice: str, data: SplitData, *, train: bool, initial_epoch: int = 0,
               one_hot: bool = True):
    """One split as `model.fit`/`predict` input from the chosen pipeline (train: shuffled, augmented)."""
    aug, t = augmentation(recipe), recipe.train
    if train and distributed.replicas() > 1:
        return _distributed_train_data(recipe, choice, data, initial_epoch, one_hot)
    try:
        if choice == "device" and train:
            return device_pipeline.DeviceTrainData(data, aug, batch_size=t.batch_size, seed=t.seed,
                                                   start_epoch=initial_epoch, epochs=t.epochs, one_hot=one_hot)
        if choice == "device":
            return device_pipeline.DeviceEvalData(data, aug, batch_size=t.batch_size, one_hot=one_hot)
        if train:
            return pipeline.train_dataset(data, recipe.spec, batch_size=t.batch_size, seed=t.seed,
                                          start_epoch=initial_epoch, epochs=t.epochs, one_hot=one_hot,
                                          augmentation=aug)
        return pipeline.eval_dataset(data, recipe.spec, t.batch_size, one_hot=one_hot, augmentation=aug)
    except TensorFlowMissing as err:
        raise RunError(f"{err}; or set data.pipeline = \"device\" (--set data.pipeline=device)") from err


def _distributed_train_data(recipe: Recipe, choice: str, data: SplitData, initial_epoch: int, one_hot: bool):
    """Training batches over several replicas: the device pipeline, sharded (training/distributed.py)."""
    if choice != "device":
        raise RunError(f"data.pipeline: {choice!r} is single-device; with train.devices > 1 set "
                       "data.pipeline = \"device\" (--set data.pipeline=device)")
    t = recipe.train
    return distributed.train_data(data, augmentation(recipe), batch_size=t.batch_size, seed=t.seed,
                                  start_epoch=initial_epoch, epochs=t.epochs, one_hot=one_hot)


def start_devices(recipe: Recipe) -> distributed.Topology:
    """The recipe's devices and processes for this process (one device unless train.devices says more)."""
    try:
        return distributed.start(recipe)
    except distributed.DistributedError as error:
        raise RunError(str(error)) from None


def build_model(recipe: Recipe, num_classes: int) -> keras.Model:
    keras.mixed_precision.set_global_policy(recipe.train.precision)
    return GDFRNet(
        recipe.model.variant,
        input_shape=_input_shape(recipe.spec.image_size),
        num_classes=num_classes,
        **recipe.model_overrides(),
    )


def compile_model(model: keras.Model, recipe: Recipe, steps_per_epoch: int):
    optimizer = optimizer_from_recipe(recipe.train, steps_per_epoch)
    compile_for_training(
        model, optimizer, label_smoothing=recipe.train.label_smoothing, jit_compile=recipe.train.jit_compile
    )
    return optimizer


# ---------------------------------------------------------------------------
# Signals: SIGINT/SIGTERM stop after the current batch; the last checkpoint stays.


class StopRequest:
    """SIGINT/SIGTERM: during `fit`, stop after the current batch (a second one: at once);
    before it (loading data, building the model: nothing to keep), at once."""

    def __init__(self):
        self.signal_name: str | None = None
        self.fitting = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        first = self.signal_name is None
        self.signal_name = self.signal_name or signal.Signals(signum).name
        if not first or not self.fitting:  # a second signal, or no epoch to finish: stop now
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------
# The callback that turns fit's progress into events and checkpoints.


class EpochLog(keras.callbacks.ProgbarLogger):
    """Keras's progress output, except for an epoch cut short (a signal, a NaN: not kept).

    Keras would end such an epoch with `16/16 - ... val_accuracy: ...` (its bar's full
    target, and a validation cut to one batch); this says where it stopped instead.
    """

    def __init__(self, monitor: "RunMonitor"):
        super().__init__()
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs=None):
        if not self.monitor._cut_short():
            super().on_epoch_end(epoch, logs)
            return
        if self.verbose:
            end = "\n" if self.verbose == 1 else ""  # after the live bar's line
            print(f"{end}epoch {epoch + 1} stopped at step {self.monitor._steps_done}/{self.monitor.steps}: "
                  "not kept", flush=True)


class RunMonitor(keras.callbacks.Callback):
    """Writes progress/epoch_end/checkpoint events, saves checkpoints, stops on NaN or signal."""

    def __init__(self, run_dir, events: EventWriter, recipe: Recipe, steps: int, stop: StopRequest, best: float):
        super().__init__()
        self.run_dir, self.events, self.recipe, self.steps, self.stop = run_dir, events, recipe, steps, stop
        self.best_val_accuracy = best
        self.failure: str | None = None
        self.epochs_done = 0
        self._epoch = 0
        self._steps_done = 0
        self._last_progress = 0.0
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_done = 0
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = float(logs.get("loss", 0.0))
        if not math.isfinite(loss):
            self.failure = f"loss became {loss} at epoch {self._epoch + 1}, step {batch + 1}; the last good checkpoint is kept"
            self.model.stop_training = True
            return
        self._steps_done = batch + 1
        if self.stop.signal_name:
            self.model.stop_training = True
            if batch + 1 < self.steps:
                return
        now = time.time()
        if now - self._last_progress >= PROGRESS_INTERVAL_S or batch + 1 == self.steps:
            self._last_progress = now
            self.events.emit(
                "progress", epoch=self._epoch + 1, step=batch + 1, steps=self.steps,
                loss=loss, accuracy=float(logs.get("accuracy", 0.0)),
            )

    def _cut_short(self) -> bool:
        return bool(self.failure) or self._steps_done < self.steps

    def on_test_batch_end(self, batch, logs=None):
        if self.model.stop_training and self._cut_short():  # no checkpoint will follow: skip validation
            self.model.stop_evaluating = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.stop.signal_name:  # a signal during validation: keep this epoch, start no other
            self.model.stop_training = True
        # An epoch cut short by a signal or a NaN is not a completed epoch: no event, no checkpoint.
        # One whose every step ran is kept even when a signal came in its last batch or validation.
        if self._cut_short() or "val_loss" not in logs:
            self._drop_epoch(logs)
            return
        train = self.recipe.train
        self.events.emit(
            "epoch_end", epoch=epoch + 1, epochs=train.epochs,
            loss=float(logs["loss"]), accuracy=float(logs["accuracy"]),
            val_loss=float(logs["val_loss"]), val_accuracy=float(logs["val_accuracy"]),
            lr=lr_at_epoch(epoch + 1, lr=train.lr, milestones=train.milestones, gamma=train.lr_gamma),
            seconds=time.perf_counter() - self._epoch_start,
        )
        is_best = float(logs["val_accuracy"]) > self.best_val_accuracy
        if is_best:
            self.best_val_accuracy = float(logs["val_accuracy"])
        if distributed.writes():  # torchrun rank > 0 keeps the same books; rank 0 alone saves
            self._save(epoch + 1, is_best)
        self.epochs_done = epoch + 1

    def _drop_epoch(self, logs: dict) -> None:
        """Take the validation numbers of a partial evaluation out of the logs (the console's
        line for the dropped epoch is CutEpochProgress's)."""
        for key in [k for k in logs if k.startswith("val_")]:
            del logs[key]  # the logs are shared: the progress bar (after this callback) prints without them

    def _save(self, epoch: int, is_best: bool) -> None:
        if is_best:
            checkpoints.save_best(self.run_dir, self.model)
        state = {"epoch": epoch, "best_val_accuracy": self.best_val_accuracy, "seed": self.recipe.train.seed}
        path = checkpoints.save_checkpoint(self.run_dir, self.model, self.model.optimizer, state)
        self.events.emit("checkpoint", epoch=epoch, path=str(path.relative_to(self.run_dir)), best=is_best)


# ---------------------------------------------------------------------------
# Evaluation.


def predict_logits(model: keras.Model, data: SplitData, recipe: Recipe) -> np.ndarray:
    """Logits (N, K) of `model` on every image of `data`, in order, as float64."""
    choice, _ = choose_input_pipeline(recipe, len(data))
    logits = model.predict(input_data(recipe, choice, data, train=False, one_hot=False), verbose=0)
    return np.asarray(keras.ops.convert_to_numpy(logits), np.float64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def smoothed_cross_entropy(log_probs: np.ndarray, labels: np.ndarray, smoothing: float) -> float:
    """The training loss (label-smoothed cross-entropy from logits), from log-probabilities.

    From log-probabilities, not clipped probabilities: a 256-px model early in training
    gives some classes p < 1e-12, and clipping there made this loss lower than the
    val_loss fit printed for the same images (9.05 against 9.76, issue 13).
    """
    k = log_probs.shape[1]
    targets = np.full(log_probs.shape, smoothing / k)
    targets[np.arange(len(labels)), labels] += 1.0 - smoothing
    return float(-(targets * log_probs).sum(axis=1).mean())


def evaluate(model: keras.Model, data: SplitData, recipe: Recipe, source: str) -> dict:
    """The eval.json content: accuracy, loss, per-class accuracy, confusion matrix, ROC/AUC."""
    from keras_gdfr.evaluation import evaluation_report

    log_probs = log_softmax(predict_logits(model, data, recipe))
    loss = smoothed_cross_entropy(log_probs, data.labels, recipe.train.label_smoothing)
    return evaluation_report(data.labels, np.exp(log_probs), data.class_names, loss=loss,
                             source=data.description, checkpoint=source,
                             dataset=recipe.data.dataset)


# ---------------------------------------------------------------------------
# The run.


def _write_json(path: pathlib.Path, payload: dict) -> None:
    checkpoints.atomic_write_text(path, json.dumps(payload, indent=2))


def _fit(model, recipe, train_data, test_data, run_dir, events, initial_epoch, best, stop, choice):
    train = recipe.train
    steps = distributed.steps_per_epoch(len(train_data), train.batch_size)
    train_ds = input_data(recipe, choice, train_data, train=True, initial_epoch=initial_epoch)
    test_ds = input_data(recipe, choice, test_data, train=False)
    monitor = RunMonitor(run_dir, events, recipe, steps, stop, best)
    # The monitor first: it decides which epochs count, the TensorBoard writer follows it.
    kept = lambda epoch: monitor.epochs_done == epoch  # noqa: E731
    callbacks = [monitor, EpochLog(monitor)]
    if distributed.writes():  # ranks > 0 write nothing into the run directory
        callbacks.append(tensorboard_callback(run_dir, recipe, steps, kept))
    stop.fitting = True  # a signal now ends the epoch's batch first
    try:
        model.fit(
            train_ds, epochs=train.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
            validation_data=test_ds, callbacks=[c for c in callbacks if c is not None], shuffle=False, verbose=1 if sys.stdout.isatty() else 2,
        )
    finally:
        stop.fitting = False
    return monitor


def _lock_run_dir(run_dir: pathlib.Path) -> RunLock:
    """Take the run directory's lock (held until the run ends), or say who holds it."""
    lock = RunLock(run_dir, keras.backend.backend())
    try:
        lock.acquire()
    except RunLocked as error:
        raise RunError(str(error)) from None
    return lock


# Files a launcher may put into a run directory before its trainer starts (the TUI's log).
_LAUNCHER_FILES = frozenset({LOCK_FILE, OUTPUT_LOG})


def _check_new_run_dir(run_dir: pathlib.Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir}: is a file, not a run directory")
    if run_dir.is_dir() and any(p.name not in _LAUNCHER_FILES for p in run_dir.iterdir()):
        raise RunError(f"{run_dir}: run directory already exists and is not empty; pass --resume {run_dir} to continue it")


def _create_run_dir(run_dir: pathlib.Path) -> bool:
    """mkdir -p `run_dir`; whether this call created it."""
    existed = run_dir.is_dir()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"{run_dir}: cannot create the run directory ({error.strerror or error})") from None
    return not existed


def _discard_failed_start(run_dir: pathlib.Path, created: bool) -> None:
    """A new run that failed before its first checkpoint leaves no run behind, so the corrected command can reuse the path."""
    for name in (RECIPE_FILE, EVENTS_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if created and {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        run_dir.rmdir()


def run(recipe: Recipe, run_dir: pathlib.Path, *, resume: bool = False) -> RunResult:
    """Train `recipe` into `run_dir` (new, or resumed from its last checkpoint)."""
    run_dir = pathlib.Path(run_dir)
    if not start_devices(recipe).writer:  # torchrun rank > 0: same loop, rank 0 alone writes
        return distributed.run_worker(recipe, run_dir, resume, _run, StopRequest)
    if not resume:
        _check_new_run_dir(run_dir)
    created = _create_run_dir(run_dir)
    lock = _lock_run_dir(run_dir)
    try:
        return _run_in_locked_dir(recipe, run_dir, resume, created)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(error, run_dir) from None
        raise
    finally:
        lock.release()


def _run_in_locked_dir(recipe: Recipe, run_dir: pathlib.Path, resume: bool, created: bool) -> RunResult:
    if not resume:
        _check_new_run_dir(run_dir)  # again, now that no other trainer can write it
    checkpoints.clean_temp(run_dir)  # what killed writers left; no writer is live (we hold the lock)
    if resume:
        _check_resumable(recipe, run_dir)  # before anything is written: a refusal leaves the run as it was
        return _run_locked(recipe, run_dir, resume)
    _write_json(run_dir / RECIPE_FILE, recipe.to_dict())
    try:
        return _run_locked(recipe, run_dir, resume)
    except Exception:
        if not (run_dir / checkpoints.CHECKPOINT_DIR).exists():
            _discard_failed_start(run_dir, created)
        raise


# Recipe keys a --resume may change (docs/run-directory.md): more epochs (with their milestones:
# keras_gdfr/training/extend.py), other devices (the global batch stays). Any other change since
# the run's start is refused, naming the key.
RESUMABLE_KEYS = frozenset({"train.epochs", "train.devices"})


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_resumable(recipe: Recipe, run_dir: pathlib.Path) -> None:
    """Refuse a resume under another backend, or with a recipe changed since the run's start.

    Either would continue silently but not exactly (another normalisation, no flip;
    float differences of 1e-2 after 3 epochs across backends; issue 24).
    """
    started = run_backend(run_dir)
    backend = keras.backend.backend()
    if started and started != backend:
        raise RunError(
            f"{run_dir}: the run started under the {started} backend, this process runs {backend}; a resume "
            f"under another backend does not continue it exactly. Run: KERAS_BACKEND={started} gdfr train --resume {run_dir}"
        )
    start = first_run_start(run_dir)
    if not start or not isinstance(start.get("recipe"), dict):
        return
    try:
        original = _flat(Recipe.from_dict(start["recipe"], origin=f"{run_dir / EVENTS_FILE} (run_start)").to_dict())
    except ValueError:  # a recipe this version cannot read: nothing to compare with
        return
    now = _flat(recipe.to_dict())
    allowed = RESUMABLE_KEYS
    if now.get("train.epochs") != original.get("train.epochs"):  # an extension (--resume --epochs N) moves both
        allowed = allowed | {"train.milestones"}
    changed = sorted(k for k in original.keys() | now.keys() if k not in allowed and original.get(k) != now.get(k))
    if changed:
        shown = "; ".join(f"{k} is {now.get(k)!r}, the run started with {original.get(k)!r}" for k in changed[:3])
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise RunError(
            f"{run_dir / RECIPE_FILE}: changed since the run started: {shown}{more}. A run's recipe is fixed at "
            f"its start (a resume may change only {', '.join(sorted(RESUMABLE_KEYS))}, and train.milestones with "
            "train.epochs); put it back, or start a new run"
        )


def _run_locked(recipe: Recipe, run_dir: pathlib.Path, resume: bool) -> RunResult:
    started = time.perf_counter()
    with EventWriter(run_dir) as events, StopRequest() as stop:
        try:
            if resume:
                _record_new_length(recipe, run_dir, events)
            return _run(recipe, run_dir, resume, events, stop, started)
        except KeyboardInterrupt:  # a second signal
            epoch, best = _saved_state(run_dir)
            _emit_if_possible(events, "run_end", status="interrupted", epoch=epoch,
                              seconds=time.perf_counter() - started, best_val_accuracy=best, test=None)
            return RunResult(run_dir, "interrupted", epoch, None)
        except Exception as error:
            kind = "data" if type(error).__name__ == "DataError" else "exception"
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                kind = "disk_full"
            epoch, best = _saved_state(run_dir)
            _emit_if_possible(events, "error", message=f"{type(error).__name__}: {error}", kind=kind)
            _emit_if_possible(events, "run_end", status="failed", epoch=epoch,
                              seconds=time.perf_counter() - started, best_val_accuracy=best, test=None)
            raise


def _record_new_length(recipe: Recipe, run_dir: pathlib.Path, events: EventWriter) -> None:
    """An extension (`--resume --epochs N`, keras_gdfr/training/extend.py): an `extend` event, then recipe.json."""
    saved = json.loads((run_dir / RECIPE_FILE).read_text()).get("train", {})
    fields = extension_fields(saved, recipe)
    if fields:
        events.emit("extend", **fields)
        _write_json(run_dir / RECIPE_FILE, recipe.to_dict())


def _emit_if_possible(events: EventWriter, event: str, **fields) -> None:
    """Record a failure; on a full disk that fails too, and the original error is what the user must see."""
    try:
        events.emit(event, **fields)
    except OSError:
        pass


def _saved_state(run_dir) -> tuple[int, float | None]:
    """(epochs, best val_accuracy) of the checkpoint a resume would take: what a failed or
    interrupted run's run_end reports; (0, None) when none is saved."""
    try:
        path = checkpoints.latest_checkpoint(run_dir)
        if path is None:
            return 0, None
        state = json.loads((path / "state.json").read_text())
        best = float(state["best_val_accuracy"])
        return int(state["epoch"]), (best if best >= 0 else None)
    except (checkpoints.CheckpointError, OSError, ValueError, KeyError, TypeError):
        return 0, None  # the error handler must not raise over a torn checkpoint


def _epochs_done(run_dir) -> int:
    return _saved_state(run_dir)[0]


def _refuse_restart_over_saved(run_dir: pathlib.Path) -> None:
    """A resume without any checkpoint must not start over a run that saved results."""
    saved = [name for name in (MODEL_FILE, EVAL_FILE) if (run_dir / name).exists()]
    epochs = [e.get("epoch") for e in _safe_events(run_dir) if e["event"] == "checkpoint"]
    if saved or epochs:
        what = f"events.jsonl records checkpoints up to epoch {max(epochs)}" if epochs else "the run has finished"
        raise RunError(
            f"{run_dir / checkpoints.CHECKPOINT_DIR}: no checkpoint to resume from, but {what}; refusing to "
            f"start over from epoch 1 (it would overwrite {', '.join(saved) or 'its events'})"
        )


def _safe_events(run_dir: pathlib.Path) -> list[dict]:
    try:
        return [e for e in read_events(run_dir) if isinstance(e.get("epoch", 0), int)]
    except OSError:
        return []


def _resume_point(run_dir: pathlib.Path) -> pathlib.Path | None:
    """The checkpoint to resume from (None: from scratch, only when the run saved nothing)."""
    checkpoint, note = checkpoints.find_checkpoint(run_dir)
    if checkpoint is None:
        _refuse_restart_over_saved(run_dir)
    elif note:
        print(f"warning: {note}", file=sys.stderr, flush=True)
    return checkpoint


def _run(recipe, run_dir, resume, events, stop, started) -> RunResult:
    checkpoint = _resume_point(run_dir) if resume else None  # before the data: a refusal should be quick
    tame_if_installed()  # before set_random_seed imports TensorFlow loudly and with the GPUs
    keras.utils.set_random_seed(recipe.train.seed)
    train_data, test_data = load_splits(recipe)
    model = build_model(recipe, train_data.num_classes)
    steps = distributed.steps_per_epoch(len(train_data), recipe.train.batch_size)
    optimizer = compile_model(model, recipe, steps)
    initial_epoch, best = 0, -1.0
    if checkpoint is not None:
        state = checkpoints.load_checkpoint(checkpoint, model, optimizer)
        initial_epoch, best = int(state["epoch"]), float(state["best_val_accuracy"])
    distributed.prepare(model, stop)  # torch: equal start, gradients all-reduced; tf: synchronized BatchNorm
    count = count_model(model)
    choice, reason = choose_input_pipeline(recipe, len(train_data) + len(test_data))
    events.emit(
        "run_start", run_id=run_dir.name, recipe=recipe.to_dict(), variant=recipe.model.variant,
        dataset=recipe.data.dataset, backend=keras.backend.backend(), params=count.params, macs=count.macs,
        epochs=recipe.train.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
        batch_size=recipe.train.batch_size, train_size=len(train_data), test_size=len(test_data),
        class_names=train_data.class_names, data=train_data.description, pid=os.getpid(),
        pipeline=choice, pipeline_reason=reason, commit=provenance.git_commit(), versions=provenance.versions(),
        **distributed.current().summary(),
    )
    monitor = None
    epochs_done = initial_epoch
    if initial_epoch < recipe.train.epochs:
        monitor = _fit(model, recipe, train_data, test_data, run_dir, events, initial_epoch, best, stop, choice)
        epochs_done = max(monitor.epochs_done, initial_epoch)
        best = monitor.best_val_accuracy
    seconds = lambda: time.perf_counter() - started  # noqa: E731
    best = best if best >= 0 else None  # no epoch validated yet (-1.0 is only the comparison's start)
    if monitor and monitor.failure:
        events.emit("error", message=monitor.failure, kind="nan_loss")
        events.emit("run_end", status="failed", epoch=epochs_done, seconds=seconds(), best_val_accuracy=best, test=None)
        return RunResult(run_dir, "failed", epochs_done, None, message=monitor.failure)
    if stop.signal_name or epochs_done < recipe.train.epochs:
        events.emit("run_end", status="interrupted", epoch=epochs_done, seconds=seconds(), best_val_accuracy=best, test=None)
        return RunResult(run_dir, "interrupted", epochs_done, None)
    if distributed.writes():  # torchrun rank > 0 trains and evaluates, rank 0 alone writes
        save_run_model(model, recipe, run_dir, train_data.class_names,
                       save=checkpoints.save_model)  # raw 0-255 images in (keras_gdfr.saving)
    report = evaluate(model, test_data, recipe, MODEL_FILE)
    if distributed.writes():
        _write_json(run_dir / EVAL_FILE, report)
    test = {"accuracy": report["accuracy"], "loss": report["loss"]}
    events.emit("run_end", status="completed", epoch=epochs_done, seconds=seconds(), best_val_accuracy=best, test=test)
    return RunResult(run_dir, "completed", epochs_done, test)
