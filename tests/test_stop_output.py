"""After a stop (issue 22, item 8): the output and the Run screen show no epoch that was not kept."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_gdfr.training.events import EventWriter
from keras_gdfr.training.recipe import load_recipe
from keras_gdfr.training.run import EpochLog, RunMonitor, StopRequest
from tests.test_integrity_inputs import SignalAt


@pytest.mark.parametrize("moment", ["first_batch", "last_batch"])
def test_an_epoch_cut_short_prints_where_it_stopped_not_kerass_full_bar(tmp_path, capsys, moment):
    recipe = load_recipe("recipes/cifar10.toml", variant="tiny", epochs=3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = np.ones((12, 4), "float32"), np.eye(10, dtype="float32")[np.arange(12) % 10]
    with EventWriter(tmp_path) as events, StopRequest() as stop:
        stop.fitting = True
        monitor = RunMonitor(tmp_path, events, recipe, steps=3, stop=stop, best=-1.0)
        model.fit(x, y, batch_size=4, epochs=3, validation_data=(x, y), validation_batch_size=4,
                  callbacks=[SignalAt(moment, 3), monitor, EpochLog(monitor)], verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    if moment == "first_batch":  # epoch 1 stopped after its first step: dropped
        assert lines == ["Epoch 1/3", "epoch 1 stopped at step 1/3: not kept"]
    else:  # every step ran: the epoch is kept and Keras's line stays
        assert lines[0] == "Epoch 1/3" and lines[1].startswith("3/3 - ") and "val_accuracy" in lines[1]
        assert len(lines) == 2
