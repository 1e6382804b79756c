"""The device-resident pipeline (`keras_gdfr.data.gpu_pipeline`) yields the tf.data pipeline's batches.

Run on the CPU here (torch backend): the same (seed, epoch) must give the same
order, crops, flips, normalisation, layout and labels as
`keras_gdfr.data.pipeline`, partial last batches and resume included; and
`model.fit` must train from it.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="the device pipeline is torch-only")

from keras_gdfr.data.specs import DATASETS  # noqa: E402

SPEC = DATASETS["cifar10"]
N, BATCH, SEED = 37, 8, 3


@pytest.fixture(scope="module")
def split():
    from keras_gdfr.data.sources import SplitData

    rng = np.random.default_rng(0)
    return SplitData(labels=rng.integers(0, 10, N), class_names=[str(i) for i in range(10)], description="synthetic",
                     image_size=32, images=rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8))


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _device(split, **kwargs):
    from keras_gdfr.data.gpu_pipeline import DeviceTrainData

    kwargs.setdefault("epochs", 2)
    return DeviceTrainData(split.images, split.labels, kwargs.pop("spec", SPEC), batch_size=BATCH, seed=SEED, **kwargs)


def test_epoch_plan_is_the_tf_pipelines():
    pipeline = pytest.importorskip("keras_gdfr.data.pipeline")
    from keras_gdfr.data.gpu_pipeline import epoch_plan

    for epoch in (0, 5):
        for mine, theirs in zip(epoch_plan(101, 7, epoch), pipeline.epoch_plan(101, 7, epoch)):
            np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("flip", [True, False])
def test_same_batches_as_tf_pipeline(split, data_format, flip):
    pipeline = pytest.importorskip("keras_gdfr.data.pipeline")
    spec = dataclasses.replace(SPEC, flip=flip)
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        theirs = list(pipeline.train_dataset(split, spec, batch_size=BATCH, seed=SEED, epochs=2, one_hot=True))
        mine = _device(split, spec=spec)
    finally:
        keras.config.set_image_data_format(previous)
    assert len(mine) == len(theirs) == 2 * 5
    for k, (images, labels) in enumerate(theirs):
        x, y = mine[k]
        np.testing.assert_allclose(_np(x), images.numpy(), rtol=0, atol=1e-5, err_msg=f"batch {k}")
        np.testing.assert_array_equal(_np(y), labels.numpy())


def test_resume_from_an_epoch_gives_the_same_batches(split):
    full, resumed = _device(split, epochs=3), _device(split, epochs=3, start_epoch=2)
    assert len(resumed) == full.steps_per_epoch
    for k in range(len(resumed)):
        np.testing.assert_array_equal(_np(resumed[k][0]), _np(full[2 * full.steps_per_epoch + k][0]))


def test_drop_remainder_and_memory_format(split):
    import torch

    data = _device(split, drop_remainder=True, data_format="channels_first", memory_format="channels_last")
    assert data.steps_per_epoch == N // BATCH and len(data) == 2 * (N // BATCH)
    reference = _device(split, data_format="channels_first")
    for k in range(data.steps_per_epoch):
        x, _ = data[k]
        assert tuple(x.shape) == (BATCH, 3, 32, 32)
        assert x.is_contiguous(memory_format=torch.channels_last)
        np.testing.assert_array_equal(_np(x), _np(reference[k][0]))
    with pytest.raises(IndexError):
        data[len(data)]


def test_eval_data_is_the_tf_eval_dataset(split):
    pipeline = pytest.importorskip("keras_gdfr.data.pipeline")
    from keras_gdfr.data.gpu_pipeline import DeviceEvalData

    theirs = list(pipeline.eval_dataset(split, SPEC, 10, one_hot=True))
    mine = DeviceEvalData(split.images, split.labels, SPEC, batch_size=10, data_format="channels_last")
    assert len(mine) == len(theirs) == 4
    for (x, y), (images, labels) in zip(mine, theirs):
        np.testing.assert_allclose(_np(x), images.numpy(), atol=1e-5)
        np.testing.assert_array_equal(_np(y), labels.numpy())


def test_fit_trains_from_it(split):
    from keras_gdfr.data.gpu_pipeline import DeviceEvalData
    from keras_gdfr.models import GDFRNet
    from keras_gdfr.training.optimizer import TorchSGD

    keras.utils.set_random_seed(0)
    model = GDFRNet("tiny", input_shape=(3, 32, 32), num_classes=10, data_format="channels_first",
                    widths=(8, 8, 8, 8), reduction=4)
    model.compile(optimizer=TorchSGD(0.05), metrics=["accuracy"],
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    # Contiguous NCHW: NHWC memory (memory_format="channels_last") is for GPUs; on this CPU torch
    # build, strided 1x1 conv backward on NHWC memory crashes for odd batch sizes (see bench.py).
    train = _device(split, epochs=2, data_format="channels_first")
    test = DeviceEvalData(split.images[:16], split.labels[:16], SPEC, batch_size=16, data_format="channels_first")
    history = model.fit(train, epochs=2, steps_per_epoch=train.steps_per_epoch, validation_data=test,
                        shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["val_loss"]))


def test_bad_inputs_are_named(split):
    from keras_gdfr.data.gpu_pipeline import DeviceTrainData

    with pytest.raises(ValueError, match="uint8"):
        DeviceTrainData(split.images.astype("float32"), split.labels, SPEC, batch_size=4, seed=0, epochs=1)
    with pytest.raises(ValueError, match="memory_format"):
        _device(split, memory_format="nhwc")
    with pytest.raises(ValueError, match="start_epoch"):
        _device(split, epochs=1, start_epoch=2)
