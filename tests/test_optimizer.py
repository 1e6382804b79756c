"""TorchSGD against a hand computation and against torch.optim.SGD itself.

Runs under every backend: `KERAS_BACKEND=tensorflow|jax pytest tests/test_optimizer.py`.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_gdfr.training.optimizer import NORM_AND_BIAS, MultiStepLR, TorchSGD, optimizer_from_recipe

torch = pytest.importorskip("torch")

MU, WD = 0.9, 5e-4
TOLERANCE = dict(rtol=1e-6, atol=1e-7)  # float32; FMA may move the last bit


def small_model() -> keras.Model:
    """Conv + BatchNorm + Dense: kernels, biases, gamma and beta to update."""
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs)


def random_grads(variables, steps: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(v.shape).astype("float32") for v in variables] for _ in range(steps)]


def values(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def sgd_by_hand(weights, grads, lrs, decays):
    """PyTorch SGD written out in NumPy float64: g' = g + wd*w; b = mu*b + g'; w -= lr*b."""
    weights = [w.astype("float64") for w in weights]
    buffers = [None] * len(weights)
    for step_grads, lr in zip(grads, lrs):
        for i, (w, g) in enumerate(zip(weights, step_grads)):
            g = g + (WD * w if decays[i] else 0.0)
            buffers[i] = g.copy() if buffers[i] is None else MU * buffers[i] + g  # torch: clone at step 1
            weights[i] = w - lr * buffers[i]
    return weights


def run_torch_sgd(weights, grads, lrs, decays, nesterov=False):
    """The same steps through torch.optim.SGD, one parameter group per decay setting."""
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    groups = [{"params": [p], "weight_decay": WD if d else 0.0} for p, d in zip(params, decays)]
    optimizer = torch.optim.SGD(groups, lr=lrs[0], momentum=MU, nesterov=nesterov)
    for step_grads, lr in zip(grads, lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        optimizer.step()
    return [p.detach().numpy() for p in params]


def run_torch_sgd_keras(model, grads, lrs, **kwargs):
    """The same steps through TorchSGD, changing the (float) learning rate between steps."""
    kwargs = {"momentum": MU, "weight_decay": WD, **kwargs}
    optimizer = TorchSGD(learning_rate=lrs[0], **kwargs)
    for step_grads, lr in zip(grads, lrs):
        optimizer.learning_rate = lr
        optimizer.apply(step_grads, model.trainable_variables)
    return values(model.trainable_variables), optimizer


@pytest.mark.parametrize("lrs", [[0.1], [0.1, 0.1, 0.1], [0.1, 0.02, 0.004]], ids=["1-step", "3-steps", "lr-change"])
def test_matches_hand_computation(lrs):
    model = small_model()
    start = values(model.trainable_variables)
    grads = random_grads(model.trainable_variables, len(lrs))
    got, _ = run_torch_sgd_keras(model, grads, lrs)
    expected = sgd_by_hand(start, grads, lrs, decays=[True] * len(start))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, **TOLERANCE)


@pytest.mark.parametrize("nesterov", [False, True])
def test_matches_torch_sgd_with_lr_change(nesterov):
    model = small_model()
    start = values(model.trainable_variables)
    lrs = [0.1, 0.1, 0.02]
    grads = random_grads(model.trainable_variables, len(lrs), seed=1)
    got, _ = run_torch_sgd_keras(model, grads, lrs, nesterov=nesterov)
    expected = run_torch_sgd(start, grads, lrs, [True] * len(start), nesterov=nesterov)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, **TOLERANCE)


def test_decay_exclude_matches_torch_param_groups():
    model = small_model()
    start = values(model.trainable_variables)
    decays = [v.path.split("/")[-1] not in ("gamma", "beta", "bias") for v in model.trainable_variables]
    assert decays.count(True) == 2  # conv and head kernels only
    lrs = [0.1, 0.02]
    grads = random_grads(model.trainable_variables, len(lrs), seed=2)
    got, _ = run_torch_sgd_keras(model, grads, lrs, decay_exclude=NORM_AND_BIAS)
    expected = run_torch_sgd(start, grads, lrs, decays)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, **TOLERANCE)


def test_differs_from_keras_sgd_when_lr_changes():
    """Why TorchSGD exists: Keras's velocity holds lr * g, so a milestone acts differently."""
    model = small_model()
    start = values(model.trainable_variables)
    lrs = [0.1, 0.02]
    grads = random_grads(model.trainable_variables, 2, seed=3)
    ours, _ = run_torch_sgd_keras(model, grads, lrs, weight_decay=0.0)
    for variable, value in zip(model.trainable_variables, start):
        variable.assign(value)
    keras_sgd = keras.optimizers.SGD(learning_rate=lrs[0], momentum=MU)
    for step_grads, lr in zip(grads, lrs):
        keras_sgd.learning_rate = lr
        keras_sgd.apply([keras.ops.convert_to_tensor(g) for g in step_grads], model.trainable_variables)
    assert not np.allclose(values(model.trainable_variables)[0], ours[0], rtol=1e-4, atol=0)


def test_schedule_drives_the_rate_by_iteration():
    model = small_model()
    start = values(model.trainable_variables)
    grads = random_grads(model.trainable_variables, 3, seed=4)
    optimizer = TorchSGD(MultiStepLR(0.1, [1, 2], 0.2))
    for step_grads in grads:
        optimizer.apply(step_grads, model.trainable_variables)
    expected = run_torch_sgd(start, grads, [0.1, 0.02, 0.004], [True] * len(start))
    for g, e in zip(values(model.trainable_variables), expected):
        np.testing.assert_allclose(g, e, **TOLERANCE)


def test_state_restores_into_a_fresh_optimizer():
    """Momentum buffers and the iteration counter travel through optimizer.variables."""
    model = small_model()
    start = values(model.trainable_variables)
    grads = random_grads(model.trainable_variables, 3, seed=5)
    schedule = MultiStepLR(0.1, [2], 0.2)

    straight = TorchSGD(schedule)
    for step_grads in grads:
        straight.apply(step_grads, model.trainable_variables)
    uninterrupted = values(model.trainable_variables)

    for variable, value in zip(model.trainable_variables, start):
        variable.assign(value)
    first = TorchSGD(schedule)
    for step_grads in grads[:2]:
        first.apply(step_grads, model.trainable_variables)
    saved = values(first.variables)
    resumed = TorchSGD.from_config(first.get_config())
    resumed.build(model.trainable_variables)
    assert len(resumed.variables) == len(saved) == 1 + len(start)
    for variable, value in zip(resumed.variables, saved):
        variable.assign(value)
    resumed.apply(grads[2], model.trainable_variables)
    for g, e in zip(values(model.trainable_variables), uninterrupted):
        np.testing.assert_allclose(g, e, rtol=0, atol=0)


def test_serialization_round_trip():
    optimizer = TorchSGD(MultiStepLR(0.1, [10, 20], 0.2), nesterov=True, decay_exclude=NORM_AND_BIAS)
    config = keras.saving.serialize_keras_object(optimizer)
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, TorchSGD)
    assert (clone.momentum, clone.weight_decay, clone.nesterov) == (0.9, 5e-4, True)
    assert clone.decay_exclude == NORM_AND_BIAS
    assert isinstance(clone._learning_rate, MultiStepLR)
    assert clone._learning_rate.get_config() == {"initial_lr": 0.1, "milestones": [10, 20], "gamma": 0.2}


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the multi-tensor update is torch's")
@pytest.mark.parametrize("nesterov,schedule", [(False, True), (True, True), (False, False)])
def test_foreach_update_equals_the_per_variable_update_bit_for_bit(nesterov, schedule):
    """The default torch update (`torch._foreach_*`, all variables at once) gives exactly the weights and
    buffers of `update_step`'s loop, decay exclusions and a milestone included."""
    model = small_model()
    start = values(model.trainable_variables)
    grads = random_grads(model.trainable_variables, steps=4)
    results = []
    for foreach in (False, True):
        for v, w in zip(model.trainable_variables, start):
            v.assign(w)
        optimizer = TorchSGD(MultiStepLR(0.1, [2], 0.2) if schedule else 0.05, nesterov=nesterov,
                             decay_exclude=NORM_AND_BIAS)
        optimizer.foreach = foreach
        optimizer.build(model.trainable_variables)
        assert optimizer._foreach_applies(model.trainable_variables) is foreach
        for step_grads in grads:
            optimizer.apply([keras.ops.convert_to_tensor(g) for g in step_grads], model.trainable_variables)
        results.append(values(model.trainable_variables) + values(optimizer.momentums))
    assert int(optimizer.iterations) == 4
    for mine, theirs in zip(results[1], results[0]):
        np.testing.assert_array_equal(mine, theirs)
    assert not all(np.array_equal(a, b) for a, b in zip(results[1], start))  # it did update


def test_foreach_is_the_default_on_torch_only_outside_stateless_scopes():
    model = small_model()
    optimizer = TorchSGD(0.1)
    optimizer.build(model.trainable_variables)
    assert optimizer._foreach_applies(model.trainable_variables) is (keras.backend.backend() == "torch")
    with keras.StatelessScope():  # the compiled step's stateless_apply: update_step's loop
        assert not optimizer._foreach_applies(model.trainable_variables)


def test_fits_a_compiled_model():
    """One `fit` step through the backend's train step (graph/jit where it applies)."""
    model = small_model()
    model.compile(optimizer=TorchSGD(0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    x = np.random.default_rng(6).standard_normal((4, 6, 6, 2)).astype("float32")
    y = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(momentum=1.0), "`momentum` must be in [0, 1). Received: momentum=1.0"),
        (dict(weight_decay=-1.0), "`weight_decay` must be >= 0. Received: weight_decay=-1.0"),
        (dict(momentum=0.0, nesterov=True), "Nesterov momentum requires a momentum > 0. Received: momentum=0"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        TorchSGD(**kwargs)
    assert str(error.value) == message


def test_optimizer_from_recipe_uses_the_paper_schedule():
    from keras_gdfr.training.recipe import load_recipe

    recipe = load_recipe("cifar10", epochs=10)
    optimizer = optimizer_from_recipe(recipe.train, steps_per_epoch=7)
    schedule = optimizer._learning_rate
    assert schedule.milestones == (21, 42, 56)  # epochs [3, 6, 8] x 7 steps
    assert (schedule.initial_lr, schedule.gamma) == (0.1, 0.2)
    assert (optimizer.momentum, optimizer.weight_decay, optimizer.decay_exclude) == (0.9, 5e-4, ())
