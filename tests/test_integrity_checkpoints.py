"""Checkpoint and run-file integrity in-process (issue 13): atomic writes, recovery, clear errors.

A two-layer Keras model stands in for GDFRNet: what is tested is the file handling.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import stat

import keras
import numpy as np
import pytest

from keras_gdfr.training import checkpoints
from keras_gdfr.training.checkpoints import CheckpointError
from keras_gdfr.training.events import EventWriter, read_events


def small_model(width: int = 3) -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.fit(np.ones((8, 4)), np.zeros((8, 2)), epochs=1, verbose=0)  # builds the optimizer's variables
    return model


def save_epochs(run_dir, model, epochs):
    for epoch in epochs:
        checkpoints.save_checkpoint(run_dir, model, model.optimizer, {"epoch": epoch, "best_val_accuracy": 0.5, "seed": 0})


def test_missing_or_torn_pointer_resumes_from_the_newest_complete_epoch(tmp_path):
    model = small_model()
    save_epochs(tmp_path, model, [1, 2])
    root = tmp_path / "checkpoints"
    assert checkpoints.find_checkpoint(tmp_path) == (root / "epoch-0002", None)
    # A newer but incomplete directory (killed before its state.json) is not chosen.
    (root / "epoch-0003").mkdir()
    (root / "epoch-0003" / "model.weights.h5").write_bytes(b"half")
    (root / "last.json").unlink()
    path, note = checkpoints.find_checkpoint(tmp_path)
    assert path == root / "epoch-0002" and "last.json is missing" in note and "epoch-0002" in note
    (root / "last.json").write_text('{"dir": "epo')
    path, note = checkpoints.find_checkpoint(tmp_path)
    assert path == root / "epoch-0002" and "last.json is unreadable" in note


def test_no_complete_checkpoint_is_refused_not_restarted(tmp_path):
    assert checkpoints.find_checkpoint(tmp_path) == (None, None)  # a run that saved nothing starts over
    model = small_model()
    save_epochs(tmp_path, model, [1])
    root = tmp_path / "checkpoints"
    (root / "epoch-0001" / "state.json").unlink()
    with pytest.raises(CheckpointError, match="refusing to start the run over from epoch 1"):
        checkpoints.find_checkpoint(tmp_path)


def test_saving_never_deletes_a_newer_checkpoint_and_replaces_its_own_epoch(tmp_path):
    model = small_model()
    save_epochs(tmp_path, model, [9])
    save_epochs(tmp_path, model, [8])  # what a second writer did in the report: epoch 9 must survive
    root = tmp_path / "checkpoints"
    assert checkpoints.is_complete(root / "epoch-0009")
    save_epochs(tmp_path, model, [8])  # the same epoch again: replaced, not merged
    assert sorted(p.name for p in root.iterdir()) == ["epoch-0008", "epoch-0009", "last.json"]
    save_epochs(tmp_path, model, [10])
    assert sorted(p.name for p in root.iterdir()) == ["epoch-0010", "last.json"]


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_leaves_no_temp(tmp_path, monkeypatch):
    model = small_model()
    save_epochs(tmp_path, model, [1])
    root = tmp_path / "checkpoints"
    before = {p.name: p.read_bytes() for p in (root / "epoch-0001").iterdir()}
    monkeypatch.setattr(checkpoints, "_save_optimizer", enospc)
    with pytest.raises(OSError, match="No space left"):
        save_epochs(tmp_path, model, [2])
    assert sorted(p.name for p in root.iterdir()) == ["epoch-0001", "last.json"]
    assert {p.name: p.read_bytes() for p in (root / "epoch-0001").iterdir()} == before
    assert checkpoints.find_checkpoint(tmp_path) == (root / "epoch-0001", None)


def test_model_and_best_weights_are_replaced_atomically(tmp_path, monkeypatch):
    model = small_model()
    target = tmp_path / "model.keras"
    checkpoints.save_model(model, target)
    good = target.read_bytes()
    keras.saving.load_model(target)

    def torn_save(path, *args, **kwargs):
        pathlib.Path(path).write_bytes(good[: len(good) // 2])
        enospc()

    bigger = small_model(width=5)
    monkeypatch.setattr(bigger, "save", torn_save)
    with pytest.raises(OSError):
        checkpoints.save_model(bigger, target)
    assert target.read_bytes() == good
    monkeypatch.setattr(bigger, "save_weights", torn_save)
    checkpoints.save_best(tmp_path, model)
    best = (tmp_path / "checkpoints" / "best.weights.h5").read_bytes()
    with pytest.raises(OSError):
        checkpoints.save_best(tmp_path, bigger)
    assert (tmp_path / "checkpoints" / "best.weights.h5").read_bytes() == best
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["best.weights.h5", "checkpoints", "model.keras"]


def test_files_get_the_ordinary_mode(tmp_path):
    old = os.umask(0o022)
    try:
        checkpoints.atomic_write_text(tmp_path / "eval.json", "{}")
        save_epochs(tmp_path, small_model(), [1])
    finally:
        os.umask(old)
    for path in (tmp_path / "eval.json", tmp_path / "checkpoints" / "last.json",
                 tmp_path / "checkpoints" / "epoch-0001" / "state.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((tmp_path / "checkpoints" / "epoch-0001").stat().st_mode) == 0o755


def test_clean_temp_removes_what_killed_writers_left(tmp_path):
    model = small_model()
    save_epochs(tmp_path, model, [1])
    root = tmp_path / "checkpoints"
    left = [root / ".epoch-0002.k2j3h4", root / ".best.tmp.weights.h5", root / ".best.weights.h5.tmp-1a2b3c4d.weights.h5",
            tmp_path / ".model.keras.tmp-1a2b3c4d.keras", tmp_path / ".eval.json.tmp-00ff00ff"]
    left[0].mkdir()
    (left[0] / "model.weights.h5").write_bytes(b"x")
    for path in left[1:]:
        path.write_bytes(b"x")
    (tmp_path / ".keep-me").write_text("not ours")
    assert sorted(checkpoints.clean_temp(tmp_path)) == sorted(left)
    assert not any(p.exists() for p in left) and (tmp_path / ".keep-me").exists()
    assert checkpoints.is_complete(root / "epoch-0001")


def test_torn_checkpoint_files_are_named(tmp_path):
    model = small_model()
    save_epochs(tmp_path, model, [1])
    path = tmp_path / "checkpoints" / "epoch-0001"
    fresh = small_model()
    assert checkpoints.load_checkpoint(path, fresh, fresh.optimizer)["epoch"] == 1

    npz = path / "optimizer.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"^{npz}: unreadable optimizer state \("):
        checkpoints.load_checkpoint(path, fresh, fresh.optimizer)

    (path / "state.json").write_text('{"epoch": 1, "best_val')
    with pytest.raises(CheckpointError, match=rf"^{path / 'state.json'}: unreadable checkpoint state"):
        checkpoints.load_checkpoint(path, fresh, fresh.optimizer)


def test_a_changed_architecture_is_one_line_naming_the_weights(tmp_path):
    save_epochs(tmp_path, small_model(width=3), [1])
    other = small_model(width=5)
    with pytest.raises(CheckpointError) as caught:
        checkpoints.load_checkpoint(tmp_path / "checkpoints" / "epoch-0001", other, other.optimizer)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 500
    assert message.startswith(f"{tmp_path / 'checkpoints' / 'epoch-0001' / 'model.weights.h5'}: cannot load into this model")


def test_an_event_after_a_torn_line_stays_whole(tmp_path):
    with EventWriter(tmp_path) as events:
        events.emit("run_start", epochs=3)
    with open(tmp_path / "events.jsonl", "a") as file:
        file.write('{"event": "progress", "ep')  # a writer killed mid-line, or a full disk
    with EventWriter(tmp_path) as events:
        events.emit("run_start", epochs=3, initial_epoch=1)
    assert [e.get("initial_epoch") for e in read_events(tmp_path)] == [None, 1]
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["initial_epoch"] == 1


def test_best_weights_without_a_checkpoint_start_over(tmp_path):
    """Killed between epoch 1's best weights and its checkpoint (found by tests/faults/kill_resume.py)."""
    checkpoints.save_best(tmp_path, small_model())
    assert checkpoints.find_checkpoint(tmp_path) == (None, None)


def test_an_equal_best_accuracy_keeps_the_first_epochs_best_weights(tmp_path):
    """best.weights.h5 is the first epoch that reached the best accuracy, as the events' `best` flags and
    the report's best_epoch say (a later tie does not replace it)."""
    from keras_gdfr.training.recipe import load_recipe
    from keras_gdfr.training.run import RunMonitor, StopRequest

    recipe = load_recipe("recipes/cifar10.toml", variant="tiny", epochs=3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    kernel = model.get_layer("fc").kernel
    with EventWriter(tmp_path) as events, StopRequest() as stop:
        monitor = RunMonitor(tmp_path, events, recipe, steps=1, stop=stop, best=-1.0)
        monitor.set_model(model)
        for epoch, accuracy in enumerate([0.5, 0.5, 0.25]):
            monitor.on_epoch_begin(epoch)
            monitor.on_train_batch_end(0, {"loss": 1.0})
            kernel.assign(np.full((4, 2), epoch + 1, "float32"))  # each epoch's weights told apart
            monitor.on_epoch_end(epoch, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": accuracy})
    assert [e["best"] for e in read_events(tmp_path) if e["event"] == "checkpoint"] == [True, False, False]
    model.load_weights(tmp_path / checkpoints.CHECKPOINT_DIR / checkpoints.BEST)
    assert np.all(keras.ops.convert_to_numpy(kernel.value) == 1)  # epoch 1's
