"""TensorBoard event files for every run, written with the `tensorboard` package's own writer.

`tensorboard --logdir runs/` then shows every run (one run per run directory).
What goes in (docs/run-directory.md):

- `train/loss`, `train/accuracy` at every training step, the step being the global
  one, `(epoch - 1) * steps_per_epoch + step`: the same values the `progress`
  events carry;
- `epoch/loss`, `epoch/accuracy`, `epoch/val_loss`, `epoch/val_accuracy`,
  `epoch/lr` at each completed epoch (step = the epoch number), as in `epoch_end`;
- the recipe's scalar settings as hyper-parameters (the HParams dashboard).

The writer is `tensorboard.summary.writer.event_file_writer.EventFileWriter`
(what `torch.utils.tensorboard` uses too): plain protobuf records, no TensorFlow
graph or session, so torch and jax runs need no TensorFlow for it.
"""

from __future__ import annotations

import math
import pathlib
import sys
import time
from typing import Callable

import keras

from keras_gdfr.training.schedule import lr_at_epoch

FLUSH_SECONDS = 5


def _flat(document: dict, prefix: str = "") -> dict:
    """Nested recipe dict -> {"train.lr": 0.1, ...} of bool/int/float/str (lists as text)."""
    out = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif isinstance(value, (list, tuple)):
            out[name] = ", ".join(map(str, value))
    return out


class TensorBoardWriter(keras.callbacks.Callback):
    """Writes per-step and per-epoch scalars and the recipe's hyper-parameters into `run_dir`.

    Args:
        run_dir: the run directory (the event files go directly in it).
        recipe: the run's `Recipe`.
        steps: training steps per epoch.
        kept: epoch number (1-based) -> whether the run kept that epoch (wrote its
            `epoch_end`); the run's `RunMonitor` decides, and runs before this callback.
    """

    def __init__(self, run_dir, recipe, steps: int, kept: Callable[[int], bool] | None = None):
        super().__init__()
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        self.writer = EventFileWriter(str(run_dir), flush_secs=FLUSH_SECONDS)
        self.recipe, self.steps = recipe, steps
        self.kept = kept or (lambda epoch: not self.model.stop_training)
        self._epoch = 0
        self._hparams_written = False

    def scalar(self, tag: str, value: float, step: int) -> None:
        value = float(value)
        if not math.isfinite(value):
            return
        summary = self._summary_pb2.Summary(value=[self._summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        self.writer.add_event(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def on_train_begin(self, logs=None):
        if self._hparams_written:
            return
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        hparams = _flat(self.recipe.to_dict())
        hparams["backend"] = keras.backend.backend()
        summary = hparams_pb(hparams, trial_id=pathlib.Path(self.writer.get_logdir()).name)
        self.writer.add_event(self._event_pb2.Event(wall_time=time.time(), summary=summary))
        self._hparams_written = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        step = self._epoch * self.steps + batch + 1
        for name in ("loss", "accuracy"):
            if name in logs:
                self.scalar(f"train/{name}", logs[name], step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # Only the epochs the run kept (events.jsonl has their epoch_end), not one cut short.
        if "val_loss" not in logs or not self.kept(epoch + 1):
            return
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if name in logs:
                self.scalar(f"epoch/{name}", logs[name], epoch + 1)
        train = self.recipe.train
        lr = lr_at_epoch(epoch + 1, lr=train.lr, milestones=train.milestones, gamma=train.lr_gamma)
        self.scalar("epoch/lr", lr, epoch + 1)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


def tensorboard_callback(run_dir, recipe, steps: int, kept=None) -> TensorBoardWriter | None:
    """The writer, or None (one line on stderr) when the `tensorboard` package is missing."""
    try:
        return TensorBoardWriter(run_dir, recipe, steps, kept)
    except ImportError as error:
        print(f"warning: no TensorBoard files for this run ({error}); pip install tensorboard", file=sys.stderr)
        return None
