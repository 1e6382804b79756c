"""Inputs and interruptions in-process (issue 13): --data paths, recipe paths, signals at epoch end."""

from __future__ import annotations

import os
import signal

import keras
import numpy as np
import pytest

from keras_gdfr.data.errors import DataError
from keras_gdfr.data.sources import check_data_dir, load_dataset
from keras_gdfr.training.events import EventWriter, read_events
from keras_gdfr.training.recipe import RecipeError, find_recipe, load_recipe, parse_set
from keras_gdfr.training.run import RunMonitor, StopRequest
from tests import data_fixtures as fx


def test_data_paths_that_hold_no_data_are_one_line_and_download_nothing(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path / 'typo'}: no such file or folder \(the data path does not exist\)$"):
        load_dataset("cifar10", "train", data_dir=tmp_path / "typo")
    for dataset in ("gtsrb", "imagewoof"):  # these used to create the mistyped folder and download into it
        with pytest.raises(DataError, match="no such file or folder"):
            load_dataset(dataset, "train", data_dir=tmp_path / "typo")
        assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=rf"^{tmp_path / 'empty'}: empty folder; pass the folder that holds train/"):
        load_dataset("cifar10", "train", data_dir=tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_folder_one_level_too_deep_names_the_right_one(tmp_path):
    root = fx.imagefolder(tmp_path / "imagenette", classes=["n01", "n02"], per_class=(1, 1))
    with pytest.raises(DataError) as caught:
        check_data_dir("imagenette", root / "train")
    assert str(caught.value) == (
        f"{root / 'train'}: found no imagenette data here (train/ and test/ (or val/) class folders, or a prepared "
        f"tfds imagenette/full-size-v2 data_dir); pass the folder that holds it: {root}")
    check_data_dir("imagenette", root)  # the right one passes
    gtsrb = tmp_path / "g"
    fx.gtsrb_tree(gtsrb, per_class=1)
    deep = next(p for p in gtsrb.rglob("Final_Training") if p.is_dir())
    with pytest.raises(DataError, match=rf"pass the folder that holds it: {deep.parent}$"):
        check_data_dir("gtsrb", deep)


def test_recipe_paths_and_set_keys_get_a_useful_line(tmp_path):
    with pytest.raises(RecipeError, match="^/dev/null: cannot read recipe: not a regular file$"):
        find_recipe("/dev/null")
    with pytest.raises(RecipeError, match=rf"^{tmp_path}: cannot read recipe: is a folder, not a .toml file$"):
        find_recipe(str(tmp_path))
    with pytest.raises(RecipeError, match=r"\[train\] is a section: set one of its keys, e.g. train\.\w+=\.\.\.$"):
        parse_set("train=3")
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + b'[data]\ndataset = "cifar10"\n[train]\nepochs = 7\n')
    assert load_recipe(bom).train.epochs == 7


class SignalAt(keras.callbacks.Callback):
    """Sends this process SIGTERM at one moment of fit: before the last batch, or during validation."""

    def __init__(self, moment: str, steps: int):
        super().__init__()
        self.moment, self.steps, self.sent = moment, steps, False
        self.batches_after = 0  # training batches begun after the one the signal came in

    def _send(self):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_begin(self, batch, logs=None):
        self.batches_after += self.sent
        if self.moment == "last_batch" and batch == self.steps - 1:
            self._send()
        if self.moment == "first_batch" and batch == 0:
            self._send()

    def on_test_batch_begin(self, batch, logs=None):
        if self.moment == "validation":
            self._send()


@pytest.mark.parametrize("moment, kept", [("last_batch", 1), ("validation", 1), ("first_batch", 0)])
def test_a_signal_in_the_last_batch_or_validation_keeps_the_finished_epoch(tmp_path, moment, kept, capsys):
    recipe = load_recipe("recipes/cifar10.toml", variant="tiny", epochs=3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = np.ones((8, 4), "float32"), np.eye(10, dtype="float32")[np.arange(8) % 10]
    with EventWriter(tmp_path) as events, StopRequest() as stop:
        stop.fitting = True  # as _fit sets it (before fit, a signal stops at once)
        monitor = RunMonitor(tmp_path, events, recipe, steps=2, stop=stop, best=-1.0)
        model.fit(x, y, batch_size=4, epochs=3, validation_data=(x, y), validation_batch_size=4,
                  callbacks=[signaller := SignalAt(moment, 2), monitor], verbose=0)
    log = list(read_events(tmp_path))
    assert stop.signal_name == "SIGTERM"
    assert monitor.epochs_done == kept
    assert [e["epoch"] for e in log if e["event"] == "checkpoint"] == list(range(1, kept + 1))
    assert signaller.batches_after == 0  # it stopped where it was: no step of another epoch ran
    assert (tmp_path / "checkpoints" / "last.json").exists() == bool(kept)
    assert not kept or "val_accuracy" in monitor.model.history.history  # no val_accuracy printed for a dropped epoch
    assert kept or "val_accuracy" not in monitor.model.history.history


def test_the_evaluation_loss_is_the_validation_loss_even_for_extreme_logits():
    """At 256 px early in training some p < 1e-12; eval.json's loss clipped there (9.05 against fit's 9.76)."""
    from keras_gdfr.data.split import SplitData
    from keras_gdfr.training.optimizer import compile_for_training
    from keras_gdfr.training.run import choose_input_pipeline, evaluate, input_data

    recipe = load_recipe("recipes/cifar10.toml", variant="tiny")
    rng = np.random.default_rng(0)
    data = SplitData(labels=np.arange(40) % 10, class_names=fx.CIFAR_CLASSES, description="random", image_size=32,
                     images=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8))
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=1))])
    compile_for_training(model, keras.optimizers.SGD(0.1), label_smoothing=recipe.train.label_smoothing)
    val = input_data(recipe, choose_input_pipeline(recipe, len(data))[0], data, train=False)  # as fit validates
    val_loss = model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert val_loss > 30  # logits hundreds apart: probabilities far below 1e-12
    assert evaluate(model, data, recipe, "test")["loss"] == pytest.approx(val_loss, rel=1e-5)


def test_the_schedule_is_printed_epoch_by_epoch():
    from keras_gdfr.training.commands import schedule_line

    three = load_recipe("recipes/cifar10.toml", epochs=3).train  # the README's main command
    assert schedule_line(three) == "schedule: lr 0.1 for epoch 1, 0.02 for 2, 0.004 for 3 (SGD momentum 0.9, batch 128)"
    paper = load_recipe("recipes/cifar10.toml").train
    assert schedule_line(paper).startswith("schedule: lr 0.1 for epochs 1-60, 0.02 for 61-120, 0.004 for 121-160, "
                                           "0.0008 for 161-200")
