"""The device-resident pipeline yields the tf.data pipeline's batches, on every backend.

The same (seed, epoch) must give the same order, crops, flips, normalisation,
layout and labels as `keras_gdfr.data.pipeline` (tf.data), at 32 px (decoded
images, pad + crop) and 256 px (encoded files, resize + crop), partial last
batches and resume included; and `model.fit` must train from it. The current
backend runs in-process, the other two in a subprocess each.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_gdfr.data.augment import Augmentation
from keras_gdfr.data.device_pipeline import DeviceEvalData, DeviceTrainData, choose_pipeline
from keras_gdfr.data.split import SplitData
from keras_gdfr.data.specs import DATASETS

SPEC = DATASETS["cifar10"]
LARGE = DATASETS["imagenette"]
N, BATCH, SEED = 37, 8, 3
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_split(n=N) -> SplitData:
    rng = np.random.default_rng(0)
    return SplitData(labels=rng.integers(0, 10, n), class_names=[str(i) for i in range(10)], description="synthetic",
                     image_size=32, images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


def large_split(n=6) -> SplitData:
    """Encoded noise images of several shapes (JPEG and PNG): resize + crop positions show."""
    rng = np.random.default_rng(1)
    encoded = []
    for i, (w, h) in enumerate([(320, 240), (260, 300), (288, 288), (400, 270), (256, 256), (300, 500)][:n]):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buffer, format="JPEG" if i % 2 else "PNG")
        encoded.append(buffer.getvalue())
    return SplitData(labels=np.arange(n) % 10, class_names=[str(i) for i in range(10)], description="synthetic large",
                     image_size=256, encoded=encoded)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def compare_pipelines(large: bool = False, data_format: str = "channels_last") -> int:
    """Every train (2 epochs) and eval batch of both pipelines, compared; returns the batches compared."""
    from keras_gdfr.data import pipeline

    split, spec = (large_split(), LARGE) if large else (small_split(), SPEC)
    batch = 4 if large else BATCH
    aug = Augmentation.for_spec(spec)
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        theirs = list(pipeline.train_dataset(split, spec, batch_size=batch, seed=SEED, epochs=2, one_hot=True,
                                             augmentation=aug))
        mine = DeviceTrainData(split, aug, batch_size=batch, seed=SEED, epochs=2)
        their_eval = list(pipeline.eval_dataset(split, spec, batch, one_hot=True, augmentation=aug))
        my_eval = DeviceEvalData(split, aug, batch_size=batch)
    finally:
        keras.config.set_image_data_format(previous)
    assert len(mine) == len(theirs) == 2 * -(-len(split) // batch)
    assert len(my_eval) == len(their_eval)
    pairs = [(mine[k], t) for k, t in enumerate(theirs)] + [(my_eval[k], t) for k, t in enumerate(their_eval)]
    for k, ((x, y), (images, labels)) in enumerate(pairs):
        np.testing.assert_allclose(_np(x), images.numpy(), rtol=0, atol=1e-6, err_msg=f"batch {k}")
        np.testing.assert_array_equal(_np(y), labels.numpy())
    return len(pairs)


@pytest.mark.parametrize("large", [False, True], ids=["32px", "256px"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_same_batches_as_tf_pipeline(large, data_format):
    pytest.importorskip("tensorflow")
    assert compare_pipelines(large, data_format) > 4


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_same_batches_on_the_other_backends(backend):
    if backend == keras.backend.backend():
        pytest.skip("covered in-process")
    pytest.importorskip(backend)
    pytest.importorskip("tensorflow")
    script = ("from tests.test_device_pipeline import compare_pipelines as c; import keras; "
              "print('COMPARED', keras.backend.backend(), c(False), c(True), c(False, 'channels_first'))")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"COMPARED {backend} 15 6 15" in result.stdout


def test_resume_from_an_epoch_gives_the_same_batches():
    split, aug = small_split(), Augmentation.for_spec(SPEC)
    full = DeviceTrainData(split, aug, batch_size=BATCH, seed=SEED, epochs=3)
    resumed = DeviceTrainData(split, aug, batch_size=BATCH, seed=SEED, epochs=3, start_epoch=2)
    assert len(resumed) == full.steps_per_epoch
    for k in range(len(resumed)):
        np.testing.assert_array_equal(_np(resumed[k][0]), _np(full[2 * full.steps_per_epoch + k][0]))


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="memory_format is a torch option")
def test_drop_remainder_and_memory_format():
    import torch

    split, aug = small_split(), Augmentation.for_spec(SPEC)
    data = DeviceTrainData(split, aug, batch_size=BATCH, seed=SEED, epochs=2, drop_remainder=True,
                           data_format="channels_first", memory_format="channels_last")
    assert data.steps_per_epoch == N // BATCH and len(data) == 2 * (N // BATCH)
    reference = DeviceTrainData(split, aug, batch_size=BATCH, seed=SEED, epochs=2, data_format="channels_first")
    for k in range(data.steps_per_epoch):
        x, _ = data[k]
        assert tuple(x.shape) == (BATCH, 3, 32, 32)
        assert x.is_contiguous(memory_format=torch.channels_last)
        np.testing.assert_array_equal(_np(x), _np(reference[k][0]))
    with pytest.raises(IndexError):
        data[len(data)]


def test_fit_trains_from_it():
    from keras_gdfr.models import GDFRNet
    from keras_gdfr.training.optimizer import TorchSGD

    split, aug = small_split(), Augmentation.for_spec(SPEC)
    keras.utils.set_random_seed(0)
    model = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10, widths=(8, 8, 8, 8), reduction=4)
    model.compile(optimizer=TorchSGD(0.05), metrics=["accuracy"],
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    train = DeviceTrainData(split, aug, batch_size=BATCH, seed=SEED, epochs=2)
    test = DeviceEvalData(small_split(16), aug, batch_size=16)
    history = model.fit(train, epochs=2, steps_per_epoch=train.steps_per_epoch, validation_data=test,
                        shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["val_loss"]))


def test_bad_inputs_are_named():
    split, aug = small_split(), Augmentation.for_spec(SPEC)
    with pytest.raises(ValueError, match="memory_format"):
        DeviceTrainData(split, aug, batch_size=4, seed=0, epochs=1, memory_format="nhwc")
    with pytest.raises(ValueError, match="start_epoch"):
        DeviceTrainData(split, aug, batch_size=4, seed=0, epochs=1, start_epoch=2)
    with pytest.raises(ValueError, match="256-px"):
        DeviceTrainData(split, Augmentation.for_spec(LARGE), batch_size=4, seed=0, epochs=1)
    with pytest.raises(ValueError, match="smaller than the 32-px crop"):
        Augmentation.for_spec(SPEC, resize=30)


def test_auto_choice_follows_the_memory_budget():
    choice, reason = choose_pipeline("auto", 1000)
    assert choice == "device" and "fit the device budget" in reason
    choice, reason = choose_pipeline("auto", 10**15, tf_available=True)
    assert choice == "tf.data" and "exceed the device budget" in reason
    choice, reason = choose_pipeline("auto", 10**15, tf_available=False)
    assert choice == "device" and "not installed" in reason
    assert choose_pipeline("tf.data", 1) == ("tf.data", "data.pipeline = 'tf.data' in the recipe")
    with pytest.raises(ValueError, match="data.pipeline"):
        choose_pipeline("gpu", 1)
