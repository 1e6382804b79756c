"""The tf.data input pipeline: shapes, normalisation, augmentation, resumable determinism."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_gdfr.data import pipeline as P
from keras_gdfr.data.split import SplitData
from keras_gdfr.data.specs import DATASETS

CIFAR = DATASETS["cifar10"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_data(n=10, num_classes=3, size=32) -> SplitData:
    """Images whose every pixel is distinct (so a crop or flip shows), labels i % classes."""
    rng = np.random.default_rng(7)
    return SplitData(
        labels=np.arange(n) % num_classes,
        class_names=[f"c{i}" for i in range(num_classes)],
        description="synthetic",
        image_size=size,
        images=rng.integers(1, 256, (n, size, size, 3), dtype=np.uint8),
    )


def large_data(sizes, spec=DATASETS["imagenette"]) -> SplitData:
    """PNG images of the given (width, height): left half dark, right half bright."""
    encoded = []
    for width, height in sizes:
        pixels = np.full((height, width, 3), 200, np.uint8)
        pixels[:, : width // 2] = 20
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return SplitData(labels=np.arange(len(sizes)) % 10, class_names=[str(i) for i in range(10)],
                     description="synthetic large", image_size=spec.image_size, encoded=encoded)


def collect(ds):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return images, labels


def normalized(uint8_images, spec):
    return ((uint8_images.astype(np.float64) / 255 - np.array(spec.mean)) / np.array(spec.std)).astype(np.float32)


def reference_augment(images, draws, flip, pad=4):
    """numpy pad-crop-flip, written independently of the pipeline."""
    size = images.shape[1]
    out = []
    for image, (u_row, u_col, u_flip) in zip(images, draws):
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
        top = min(int(np.floor(u_row * np.float32(2 * pad + 1))), 2 * pad)
        left = min(int(np.floor(u_col * np.float32(2 * pad + 1))), 2 * pad)
        crop = padded[top:top + size, left:left + size]
        out.append(crop[:, ::-1] if flip and u_flip < 0.5 else crop)
    return np.stack(out)


def test_steps_per_epoch():
    assert P.steps_per_epoch(10, 4) == 3
    assert P.steps_per_epoch(8, 4) == 2
    assert P.steps_per_epoch(1, 128) == 1


def test_train_batches_count_shapes_and_last_partial():
    data = small_data(10)
    ds = P.train_dataset(data, CIFAR, batch_size=4, seed=0, start_epoch=0, epochs=3)
    images, labels = collect(ds)
    assert len(images) == P.steps_per_epoch(10, 4) * 3 == int(ds.cardinality())
    assert [len(x) for x in images] == [4, 4, 2] * 3
    assert images[0].dtype == np.float32 and images[0].shape == (4, 32, 32, 3)
    assert labels[0].dtype == np.int32
    for epoch in range(3):  # every image exactly once per epoch
        seen = np.concatenate(labels[epoch * 3:(epoch + 1) * 3])
        np.testing.assert_array_equal(np.sort(seen), np.sort(data.labels))


def test_eval_normalisation_matches_hand_computation():
    data = small_data(5)
    data.images[0, 0, 0] = (51, 0, 255)
    images, labels = collect(P.eval_dataset(data, CIFAR, batch_size=4))
    assert [len(x) for x in images] == [4, 1]
    np.testing.assert_array_equal(np.concatenate(labels), data.labels)
    first = images[0][0, 0, 0]
    hand = [(0.2 - 0.4914) / 0.2470, (0.0 - 0.4822) / 0.2435, (1.0 - 0.4465) / 0.2616]
    np.testing.assert_allclose(first, hand, rtol=1e-5)
    np.testing.assert_allclose(np.concatenate(images), normalized(data.images, CIFAR), atol=1e-5)


def test_train_augmentation_equals_reference_crop_and_flip():
    data = small_data(24)
    seed, epochs = 3, 2
    images, labels = collect(P.train_dataset(data, CIFAR, batch_size=8, seed=seed, epochs=epochs))
    got = np.concatenate(images)
    expected = []
    for epoch in range(epochs):
        order, draws = P.epoch_plan(len(data), seed, epoch)
        expected.append(normalized(reference_augment(data.images[order], draws, flip=True), CIFAR))
        np.testing.assert_array_equal(np.concatenate(labels)[epoch * 24:(epoch + 1) * 24],
                                      data.labels[order])
    np.testing.assert_allclose(got, np.concatenate(expected), atol=1e-5)
    # the augmentation really happens: shifted crops and mirrored images occur
    order, draws = P.epoch_plan(len(data), seed, 0)
    assert (draws[:, 2] < 0.5).any() and (draws[:, 2] >= 0.5).any()
    plain = normalized(data.images[order], CIFAR)
    assert not np.allclose(got[:24], plain)


def test_no_flip_for_svhn_and_gtsrb():
    data = small_data(24)
    order, draws = P.epoch_plan(len(data), 5, 0)
    assert (draws[:, 2] < 0.5).sum() >= 3  # flips would have been drawn
    for name in ("svhn", "gtsrb"):
        spec = DATASETS[name]
        assert not spec.flip
        images, _ = collect(P.train_dataset(data, spec, batch_size=24, seed=5, epochs=1))
        expected = normalized(reference_augment(data.images[order], draws, flip=False), spec)
        np.testing.assert_allclose(images[0], expected, atol=1e-5)


def test_augment_false_keeps_order_but_not_crops():
    data = small_data(6)
    images, _ = collect(P.train_dataset(data, CIFAR, batch_size=6, seed=1, epochs=1, augment=False))
    order, _ = P.epoch_plan(6, 1, 0)
    np.testing.assert_allclose(images[0], normalized(data.images[order], CIFAR), atol=1e-5)


def test_resume_equals_tail_of_uninterrupted_run_byte_for_byte():
    data = small_data(10)
    full = collect(P.train_dataset(data, CIFAR, batch_size=4, seed=11, start_epoch=0, epochs=2))
    resumed = collect(P.train_dataset(data, CIFAR, batch_size=4, seed=11, start_epoch=1, epochs=2))
    steps = P.steps_per_epoch(10, 4)
    assert len(resumed[0]) == steps
    for a, b in zip(full[0][steps:], resumed[0]):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(full[1][steps:], resumed[1]):
        assert a.tobytes() == b.tobytes()
    other = collect(P.train_dataset(data, CIFAR, batch_size=4, seed=12, start_epoch=1, epochs=2))
    assert other[0][0].tobytes() != resumed[0][0].tobytes()
    assert full[0][0].tobytes() != full[0][steps].tobytes()  # epochs differ


def test_channels_first_transposes():
    data = small_data(5)
    nhwc, _ = collect(P.eval_dataset(data, CIFAR, batch_size=5))
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        nchw, _ = collect(P.eval_dataset(data, CIFAR, batch_size=5))
        train, _ = collect(P.train_dataset(data, CIFAR, batch_size=5, seed=0, epochs=1))
    finally:
        keras.config.set_image_data_format(previous)
    assert nchw[0].shape == (5, 3, 32, 32) and train[0].shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(nchw[0], nhwc[0].transpose(0, 3, 1, 2))


def test_one_hot_labels():
    data = small_data(4)
    _, labels = collect(P.eval_dataset(data, CIFAR, batch_size=4, one_hot=True))
    np.testing.assert_array_equal(labels[0], np.eye(3, dtype=np.float32)[data.labels])


def test_large_images_decode_resize_crop_flip():
    spec = DATASETS["imagenette"]
    data = large_data([(320, 240), (240, 240), (300, 500), (256, 256)] * 2)
    evaluated, _ = collect(P.eval_dataset(data, spec, batch_size=8))
    assert evaluated[0].shape == (8, 256, 256, 3) and evaluated[0].dtype == np.float32
    dark, bright = normalized(np.array([20, 200], np.uint8)[:, None].repeat(3, 1), spec)
    centre = evaluated[0]
    np.testing.assert_allclose(centre[:, 128, 5], np.tile(dark, (8, 1)), atol=1e-4)
    np.testing.assert_allclose(centre[:, 128, 250], np.tile(bright, (8, 1)), atol=1e-4)
    # train: shorter side 288, random crop, flip where draws[:, 2] < 0.5
    ds = P.train_dataset(data, spec, batch_size=8, seed=2, epochs=2)
    images, _ = collect(ds)
    for epoch, batch in enumerate(images):
        _, draws = P.epoch_plan(8, 2, epoch)
        left_is_bright = batch[:, 128, 0, 0] > 0
        np.testing.assert_array_equal(left_is_bright, draws[:, 2] < 0.5)
    resumed, _ = collect(P.train_dataset(data, spec, batch_size=8, seed=2, start_epoch=1, epochs=2))
    assert resumed[0].tobytes() == images[1].tobytes()
    assert P.train_resize(256) == 288


def test_pipeline_rate_is_positive():
    assert P.pipeline_rate(small_data(64), CIFAR, batch_size=16, batches=4) > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="start_epoch"):
        P.train_dataset(small_data(4), CIFAR, batch_size=2, seed=0, start_epoch=3, epochs=2)
    with pytest.raises(ValueError, match="px"):
        P.eval_dataset(small_data(4, size=16), CIFAR, 2)


def fit_stream() -> list[int]:
    """Train a tiny model on epochs 1..2 of the stream; returns the batch indexes fit saw."""
    spec = DATASETS["cifar10"]
    rng = np.random.default_rng(0)
    data = SplitData(labels=np.arange(20) % 2, class_names=["a", "b"], description="x",
                     image_size=32, images=rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8))
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    seen = []
    count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    train = P.train_dataset(data, spec, batch_size=8, seed=0, start_epoch=1, epochs=3, one_hot=True)
    model.fit(train, epochs=3, initial_epoch=1, steps_per_epoch=P.steps_per_epoch(20, 8),
              validation_data=P.eval_dataset(data, spec, 8, one_hot=True), verbose=0, shuffle=False,
              callbacks=[count])
    return seen


def test_model_fit_consumes_the_stream_on_this_backend():
    """Keras keeps one iterator across epochs when steps_per_epoch is given: 3 + 3 batches."""
    assert fit_stream() == [0, 1, 2, 0, 1, 2]


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="covered in-process")
def test_model_fit_consumes_the_stream_on_torch():
    script = ("import keras; from tests.test_pipeline import fit_stream; "
              "print('BATCHES', keras.backend.backend(), fit_stream())")
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=240, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BATCHES torch [0, 1, 2, 0, 1, 2]" in result.stdout
