"""What the trainer really trains with: its compiled loss, its batches, the learning rate it applies.

Each test goes through the trainer's own code (keras_gdfr/training/run.py) with the
shipped recipes (keras_gdfr/recipes/*.toml), and checks a number worked out by hand or
a property measured on what comes out, not the formula that logs it:
- the loss `run.compile_model` compiles into the model is label-smoothed
  cross-entropy with the recipe's smoothing (hand-computed values);
- each recipe's `[augment]` flags reach the batches `run.input_data` makes: flips and
  pad/crop translations measured on coded fixture images;
- the learning rate the optimizer applies at each step of a real `run.run` (measured
  from the weight update and the momentum buffer it used) follows the recipe's
  schedule across epoch boundaries (the schedule has no warm-up: keras_gdfr/training/schedule.py).
"""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest

from keras_gdfr.data.split import SplitData
from keras_gdfr.training import run
from keras_gdfr.training.recipe import load_recipe

# ---------------------------------------------------------------------------
# (a) The compiled loss.

# One example, 10 classes, logits (2, 0, ..., 0), label 0. log Z = log(e^2 + 9) = 2.7966138;
# log p_0 = -0.7966138, log p_k = -2.7966138 (k > 0). Smoothing s: target 1 - s + s/10 on
# class 0, s/10 elsewhere, loss = -(1 - 0.9 s) log p_0 - 0.9 s log p_k:
#   s = 0.1: 0.91 * 0.7966138 + 0.09 * 2.7966138 = 0.9766138
#   s = 0.2: 0.82 * 0.7966138 + 0.18 * 2.7966138 = 1.1566138
#   s = 0 (no smoothing): 0.7966138
HAND_LOSS = {0.1: 0.9766138, 0.2: 1.1566138, 0.0: 0.7966138}


def _compiled_loss(recipe) -> float:
    """The loss of the model `run.compile_model` compiled, on the example above (one-hot labels, as the pipeline)."""
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10)])
    run.compile_model(model, recipe, steps_per_epoch=1)
    logits = np.array([[2.0] + [0.0] * 9], "float32")
    y = np.eye(10, dtype="float32")[[0]]
    return float(keras.ops.convert_to_numpy(model.compute_loss(x=None, y=y, y_pred=logits)))


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "gtsrb", "imagenette", "imagewoof"])
def test_compiled_loss_is_label_smoothed_cross_entropy_with_the_recipes_value(name):
    recipe = load_recipe(name)
    assert recipe.train.label_smoothing == 0.1  # Table 2
    assert _compiled_loss(recipe) == pytest.approx(HAND_LOSS[0.1], abs=1e-6)


def test_a_changed_smoothing_reaches_the_compiled_loss():
    assert _compiled_loss(load_recipe("cifar10", sets=["train.label_smoothing=0.2"])) == pytest.approx(HAND_LOSS[0.2], abs=1e-6)
    assert _compiled_loss(load_recipe("cifar10", sets=["train.label_smoothing=0"])) == pytest.approx(HAND_LOSS[0.0], abs=1e-6)


def test_the_evaluation_loss_uses_the_same_smoothing():
    logits = np.array([[2.0] + [0.0] * 9])
    assert run.smoothed_cross_entropy(run.log_softmax(logits), np.array([0]), 0.1) == pytest.approx(HAND_LOSS[0.1], abs=1e-6)


# ---------------------------------------------------------------------------
# (b) The augmentation flags reach the batches.

N_IMAGES = 48
COL, ROW, BASE = 7, 7, 10  # fixture pixel (r, c) of image i = (BASE + COL c, BASE + ROW r, BASE + i): never 0


def _coded_split(spec) -> SplitData:
    size = spec.image_size
    r, c = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    images = np.stack([np.stack([BASE + COL * c, BASE + ROW * r, np.full_like(r, BASE + i)], -1)
                       for i in range(N_IMAGES)]).astype(np.uint8)
    return SplitData(labels=np.arange(N_IMAGES) % spec.num_classes, description="coded fixture",
                     class_names=[str(k) for k in range(spec.num_classes)], image_size=size, images=images)


def _decoded(batch, recipe) -> np.ndarray:
    """uint8-valued (B, S, S, 3) back from a normalised batch in the model's layout."""
    x = keras.ops.convert_to_numpy(batch).astype(np.float64)
    if keras.config.image_data_format() == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    if recipe.augment.normalize:
        x = (x * np.asarray(recipe.spec.std) + np.asarray(recipe.spec.mean)) * 255
    return np.rint(x)


def _flips_and_shifts(images):
    """Per image: flipped (columns decode right to left), and the (row, column) offset of the crop."""
    flipped, shifts = [], []
    for image in images:
        inside = image[..., 2] > 0  # padding is 0 everywhere
        rows, cols = np.nonzero(inside)
        r0, c0 = rows.min(), cols.min()
        line = image[r0, inside[r0], 0]
        assert len(line) > 1 and np.all(np.abs(np.diff(line)) == COL)  # the crop is contiguous
        flipped.append(bool(line[1] < line[0]))
        source_row = (image[r0, c0, 1] - BASE) / ROW
        source_col = (image[r0, inside[r0], 0].min() - BASE) / COL
        shifts.append((int(source_row - r0), int(source_col - c0)))
    return np.array(flipped), shifts


def _train_batches(recipe, data):
    choice, _ = run.choose_input_pipeline(recipe, 2 * len(data))  # as the trainer chooses
    batches = run.input_data(recipe, choice, data, train=True)
    return np.concatenate([_decoded(batches[k][0], recipe) for k in range(len(batches))])


@pytest.mark.parametrize("name,flip", [("cifar10", True), ("cifar100", True), ("svhn", False), ("gtsrb", False)])
def test_recipe_augmentation_reaches_the_batches(name, flip):
    recipe = load_recipe(name, epochs=2, sets=["train.batch_size=16"])
    assert recipe.augment.flip is flip and recipe.augment.pad == 4  # section 2.1; no flip for digits and signs
    flipped, shifts = _flips_and_shifts(_train_batches(recipe, _coded_split(recipe.spec)))
    assert len(flipped) == 2 * N_IMAGES  # two epochs
    if flip:
        assert 0.25 < flipped.mean() < 0.75  # about half: u < 0.5
    else:
        assert not flipped.any()
    assert len(set(shifts)) > 10  # pad 4 + random crop: offsets in -4..4 on both axes
    assert all(abs(dr) <= 4 and abs(dc) <= 4 for dr, dc in shifts)
    assert any(dr != 0 for dr, _ in shifts) and any(dc != 0 for _, dc in shifts)


def test_without_pad_the_crop_does_not_move_and_evaluation_is_the_plain_image():
    recipe = load_recipe("cifar10", epochs=1, sets=["augment.pad=0", "augment.flip=false", "train.batch_size=16"])
    data = _coded_split(recipe.spec)
    flipped, shifts = _flips_and_shifts(_train_batches(recipe, data))
    assert not flipped.any() and set(shifts) == {(0, 0)}
    flip_on = load_recipe("cifar10", sets=["train.batch_size=16"])
    evaluation = run.input_data(flip_on, run.choose_input_pipeline(flip_on, 2 * len(data))[0], data, train=False)
    images = np.concatenate([_decoded(evaluation[k][0], flip_on) for k in range(len(evaluation))])
    np.testing.assert_array_equal(images, data.images)  # no flip, no shift, in order


# ---------------------------------------------------------------------------
# (c) The learning rate applied at each step of a real run.


def test_applied_learning_rate_follows_the_schedule_across_epochs(tmp_path, monkeypatch):
    """`run.run` on a two-weight model: lr_t = (w_{t-1} - w_t) / buffer_t, with the TorchSGD buffer it applied.

    cifar10.toml with --epochs 3: milestones 60/120/160 of 200 scale to 1, 2 (README's main
    command), so 0.1 in epoch 1, 0.1 * 0.2 = 0.02 in epoch 2, 0.004 in epoch 3; 40 images in
    batches of 16 are 3 steps an epoch (the last one partial).
    """
    recipe = load_recipe("cifar10", epochs=3, variant="tiny", run_dir=str(tmp_path),
                         sets=["train.batch_size=16", "data.pipeline=device"])
    spec = recipe.spec
    rng = np.random.default_rng(0)

    def split(n):
        return SplitData(labels=np.arange(n) % 10, class_names=[f"c{k}" for k in range(10)], description="random",
                         image_size=32, images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))

    monkeypatch.setattr(run, "load_splits", lambda recipe: (split(40), split(10)))
    images = keras.Input((spec.image_size, spec.image_size, 3))
    model = keras.Model(images, keras.layers.Dense(10, name="head")(keras.layers.GlobalAveragePooling2D()(images)))
    monkeypatch.setattr(run, "build_model", lambda recipe, num_classes: model)
    kernel = model.get_layer("head").kernel
    seen = [keras.ops.convert_to_numpy(kernel.value).copy()]
    buffers = []
    monitor_step = run.RunMonitor.on_train_batch_end

    def record(self, batch, logs=None):
        optimizer = self.model.optimizer
        buffers.append(keras.ops.convert_to_numpy(optimizer.momentums[optimizer._get_variable_index(kernel)].value).copy())
        seen.append(keras.ops.convert_to_numpy(kernel.value).copy())
        return monitor_step(self, batch, logs)

    monkeypatch.setattr(run.RunMonitor, "on_train_batch_end", record)
    result = run.run(recipe, tmp_path / "run")
    assert result.status == "completed"
    applied = [float(np.sum((before - after) * buf) / np.sum(buf * buf))
               for before, after, buf in zip(seen, seen[1:], buffers)]
    assert applied == pytest.approx([0.1] * 3 + [0.02] * 3 + [0.004] * 3, rel=1e-3)


# ---------------------------------------------------------------------------
# The recipe's seed sets the initial weights the trainer builds.


class _Built(Exception):
    """Stops `run.run` right after it built the model."""


def _initial_kernel(recipe, tmp_path, monkeypatch) -> np.ndarray:
    build = run.build_model

    def build_then_stop(recipe, num_classes):
        model = build(recipe, num_classes)
        raise _Built(keras.ops.convert_to_numpy(model.get_layer("stem").conv.kernel.value))

    monkeypatch.setattr(run, "build_model", build_then_stop)
    ten = types.SimpleNamespace(num_classes=10)
    monkeypatch.setattr(run, "load_splits", lambda recipe: (ten, ten))
    with pytest.raises(_Built) as built:
        run.run(recipe, tmp_path / f"run{len(list(tmp_path.iterdir()))}")
    return built.value.args[0]


def test_the_recipe_seed_sets_the_initial_weights(tmp_path, monkeypatch):
    """`run.run` seeds everything from train.seed before building: same seed, same weights; another, others."""
    def kernel(seed):
        recipe = load_recipe("cifar10", variant="tiny", run_dir=str(tmp_path), sets=[f"train.seed={seed}"])
        return _initial_kernel(recipe, tmp_path, monkeypatch)

    first, again, other = kernel(3), kernel(3), kernel(4)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


# ---------------------------------------------------------------------------
# (d) The recipe's momentum and weight decay are the ones the optimizer applies.


def test_the_recipes_momentum_and_weight_decay_are_applied():
    """Two SGD steps by hand: buf = m * buf + g + wd * w; w -= lr * buf (coupled L2, PyTorch's SGD)."""
    lr, m, wd = 0.1, 0.5, 0.01  # not the paper's 0.9 / 5e-4, so a constant in the code cannot pass
    recipe = load_recipe("cifar10", sets=[f"train.lr={lr}", f"train.momentum={m}", f"train.weight_decay={wd}"])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, name="fc")])
    w0 = np.array([[1.0], [-2.0]], "float32")
    model.get_layer("fc").kernel.assign(w0)
    optimizer = run.compile_model(model, recipe, steps_per_epoch=100)  # epoch 1: the base rate
    g = np.array([[0.5], [0.25]], "float32")
    kernel = model.get_layer("fc").kernel
    buf, w = np.zeros_like(w0), w0.astype(np.float64)
    for _ in range(2):
        optimizer.apply([keras.ops.convert_to_tensor(g)], [kernel])
        buf = m * buf + g + wd * w
        w = w - lr * buf
        np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel.value), w, rtol=1e-6, atol=1e-7)
