"""`train.jit_compile` on torch: the train step is compiled once (keras_gdfr.training.torch_compile).

Counted with torch's own counters: `torch._dynamo.utils.counters["stats"]["unique_graphs"]`
(graphs dynamo compiled: a recompile is one more) and `counters["graph_break"]`. The
`eager` torch.compile backend is used: dynamo traces, guards and recompiles exactly as
with inductor, without inductor's minutes of C++ compilation on a CPU.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.compile is the torch backend's")

BATCH = 6
SAMPLES = 2 * BATCH + 3  # two full batches and a partial last batch of 3


def _model(jit: bool):
    from keras_gdfr.models import GDFRNet
    from keras_gdfr.training.optimizer import TorchSGD, compile_for_training

    keras.utils.set_random_seed(3)
    shape = (16, 16, 3) if keras.config.image_data_format() == "channels_last" else (3, 16, 16)
    model = GDFRNet("tiny", input_shape=shape, num_classes=4, widths=(8, 8, 8, 8), reduction=4)
    compile_for_training(model, TorchSGD(0.01), jit_compile=jit)
    return model, shape


def _data(shape, n=SAMPLES, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype("float32")
    return x, np.eye(4, dtype="float32")[rng.integers(0, 4, n)]


class _GraphsPerBatch(keras.callbacks.Callback):
    """torch's count of graphs compiled so far, after each train batch."""

    def __init__(self):
        super().__init__()
        self.graphs = []

    def on_train_batch_end(self, batch, logs=None):
        from torch._dynamo.utils import counters

        self.graphs.append(counters["stats"]["unique_graphs"])


def _assert_same_weights(compiled, eager, **tolerance):
    for a, b in zip(compiled.variables, eager.variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path,
                                   **tolerance)


def test_jit_train_step_compiles_once_over_two_epochs_with_a_partial_batch(monkeypatch):
    import torch
    from torch._dynamo.utils import counters

    from keras_gdfr.training import torch_compile

    monkeypatch.setattr(torch_compile, "COMPILER", "eager")
    torch._dynamo.reset()
    model, shape = _model(jit=True)
    eager, _ = _model(jit=False)
    x, y = _data(shape)
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())

    # Warm-up: one full batch compiles the step. The next step, a partial batch, reuses it.
    # Both equal Keras's eager steps. (Only two steps are compared: this 8-channel network
    # is chaotic at batch 6; a 1e-7 change of one eager weight grows to 1e-2 in six steps.)
    for part in (slice(0, BATCH), slice(0, 3)):
        logs = model.train_on_batch(x[part], y[part], return_dict=True)
        expected = eager.train_on_batch(x[part], y[part], return_dict=True)
        assert logs == pytest.approx(expected, rel=1e-5)
        _assert_same_weights(model, eager, rtol=1e-4, atol=1e-5)
    assert counters["stats"]["unique_graphs"] - graphs == 1

    seen = _GraphsPerBatch()
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[seen])
    assert len(seen.graphs) == 6  # 3 steps per epoch, the third of 3 images
    compiled = [g - graphs for g in seen.graphs]
    assert compiled == [1] * 6, f"graphs compiled so far after each step: {compiled} (1: only the warm-up's)"
    assert sum(counters["graph_break"].values()) == breaks
    step = model.train_function
    assert [len(graphs) for graphs in step.graphs.values()] == [1] and next(iter(step.graphs.values()))[0].dynamic
    assert [(w["kind"], w["batch"]) for w in step.warmups] == [("train", BATCH)]  # printed once, on stderr
    assert 0 < step.warmups[0]["trace_s"] < step.warmups[0]["seconds"]
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 8

    # evaluate: its own compiled step, once, the partial batch included; same figures as eager
    # on the same weights. predict stays eager.
    graphs = counters["stats"]["unique_graphs"]
    first = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    second = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    assert counters["stats"]["unique_graphs"] - graphs == 1
    eager.set_weights(model.get_weights())
    assert first == pytest.approx(second, rel=1e-6)
    assert first == pytest.approx(eager.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True), rel=1e-5)
    np.testing.assert_allclose(model.predict(x[:2], verbose=0), eager.predict(x[:2], verbose=0), rtol=1e-5)
