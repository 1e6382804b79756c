"""Every `gdfr train` run writes TensorBoard event files that hold what `events.jsonl` holds.

Read back with the `tensorboard` package's own reader (EventAccumulator), so the
files are what `tensorboard --logdir runs/` shows.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL = ["--variant", "tiny", "--set", "model.overrides.widths=[8,16,16,32]", "--batch-size", "16"]

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def events(run_dir) -> list[dict]:
    path = pathlib.Path(run_dir) / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def read_tensorboard(run_dir) -> event_accumulator.EventAccumulator:
    accumulator = event_accumulator.EventAccumulator(str(run_dir), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_files_hold_the_events_values(cifar10_zip, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "keras_gdfr.cli", "train", "recipes/cifar10.toml", *SMALL, "--data", str(cifar10_zip),
         "--limit-train", "64", "--limit-test", "32", "--epochs", "2", "--run-dir", str(run_dir)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(run_dir.glob("events.out.tfevents.*")), "no TensorBoard event file in the run directory"
    board = read_tensorboard(run_dir)
    log = events(run_dir)
    steps = next(e for e in log if e["event"] == "run_start")["steps_per_epoch"]

    train_loss = {s.step: s.value for s in board.Scalars("train/loss")}
    assert sorted(train_loss) == list(range(1, 2 * steps + 1))  # every step of both epochs
    progress = [e for e in log if e["event"] == "progress"]
    assert progress
    for event in progress:
        step = (event["epoch"] - 1) * steps + event["step"]
        assert train_loss[step] == pytest.approx(event["loss"], rel=1e-6)
    accuracy = {s.step: s.value for s in board.Scalars("train/accuracy")}
    for event in progress:
        assert accuracy[(event["epoch"] - 1) * steps + event["step"]] == pytest.approx(event["accuracy"], rel=1e-6)

    epoch_ends = [e for e in log if e["event"] == "epoch_end"]
    assert [e["epoch"] for e in epoch_ends] == [1, 2]
    for tag in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        values = {s.step: s.value for s in board.Scalars(f"epoch/{tag}")}
        assert values == {e["epoch"]: pytest.approx(e[tag], rel=1e-6) for e in epoch_ends}, tag

    # The hyper-parameters: the HParams plugin's session-start record names the recipe's settings.
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = board.PluginTagToContent("hparams")
    data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = data.session_start_info.hparams
    assert hparams["model.variant"].string_value == "tiny"
    assert hparams["train.batch_size"].number_value == 16
    assert hparams["train.lr"].number_value == pytest.approx(0.1)
    assert hparams["backend"].string_value == "torch"


def test_stop_skips_the_validation_pass(tmp_path):
    """A stop request mid-epoch: Keras's validation pass after the cut epoch ends after one batch.

    Before, `model.fit` ran the whole test split after a SIGINT (50-70 s on CIFAR-10's
    10 000 test images) before `run_end` could be written.
    """
    import keras
    import numpy as np

    from keras_gdfr.training.events import EventWriter
    from keras_gdfr.training.run import RunMonitor, StopRequest

    class Counter(keras.callbacks.Callback):
        def __init__(self, stop):
            super().__init__()
            self.stop, self.test_batches = stop, 0

        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.stop.signal_name = "SIGINT"  # what StopRequest's handler does

        def on_test_batch_end(self, batch, logs=None):
            self.test_batches += 1

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(64) % 3, 3)
    stop = StopRequest()
    counter = Counter(stop)
    with EventWriter(tmp_path) as events:
        monitor = RunMonitor(tmp_path, events, recipe=None, steps=8, stop=stop, best=-1.0)
        model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), validation_batch_size=2,
                  callbacks=[counter, monitor], verbose=0)
    assert monitor.epochs_done == 0  # the cut epoch is not counted
    assert counter.test_batches == 1  # not the 32 batches of a full pass
