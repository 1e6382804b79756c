"""The tf.data input pipeline: augmentation, normalisation, and a resumable order.

Batches are ``(images, labels)``: float32 images, NHWC (NCHW when
``keras.config.image_data_format() == "channels_first"``, read when the dataset is
built), and int32 labels (N,) (or float32 one-hot (N, K) with ``one_hot=True``,
for a loss with label smoothing). A tf.data.Dataset feeds ``model.fit`` on the
tensorflow, torch and jax backends alike.

Augmentation (Table 2 of the paper):

- 32 px (CIFAR, SVHN, GTSRB): pad 4 black pixels on every side (in uint8, before
  normalisation, as torchvision's ``RandomCrop(32, padding=4)``), random 32x32
  crop, horizontal flip with probability 1/2 when ``spec.flip`` (not SVHN, GTSRB).
- 256 px (Imagenette, Imagewoof), images decoded here from ``SplitData.encoded``:
  resize the shorter side to ``train_resize(S)`` = 9/8 S = 288 (aspect kept,
  bilinear, antialiased), random S x S crop, flip. Evaluation: the same resize
  then the centre S x S crop, so objects have the same scale in both (the paper
  says "resize to 256 + random crop"; a crop from a 256 image would be no crop).
- Then ``normalize``: ``(x / 255 - spec.mean) / spec.std`` per channel.

Determinism (for resume): `train_dataset` yields the batches of epochs
``start_epoch .. epochs-1``, ``steps_per_epoch(N, batch_size)`` each (the last one
partial). Epoch e's order and augmentation come only from `epoch_plan(N, seed, e)`
(numpy ``default_rng([seed, e])``: a permutation and three uniforms per position),
so a run resumed at epoch k sees exactly the batches an uninterrupted run saw
from epoch k on. Use it as ``model.fit(ds, epochs=epochs, initial_epoch=start_epoch,
steps_per_epoch=steps_per_epoch(len(data), batch_size))``: with ``steps_per_epoch``
given, Keras keeps one iterator across epochs.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import tensorflow as tf

from keras_gdfr.data.sources import LARGE_IMAGE_SIZE, SplitData
from keras_gdfr.data.specs import DatasetSpec

AUTOTUNE = tf.data.AUTOTUNE
PAD = 4
DRAWS = 3  # uniforms per image and epoch: crop row, crop column, flip


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch of ``n`` images: ceil(n / batch_size), last one partial."""
    return math.ceil(n / batch_size)


def train_resize(image_size: int) -> int:
    """Shorter side the 256-px training (and test) images are resized to before cropping."""
    return round(image_size * 9 / 8)


def epoch_plan(n: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The order and augmentation draws of one epoch; a function of (seed, epoch) only.

    Returns:
        order: int64 (n,), the permutation of image indexes for this epoch.
        draws: float32 (n, 3) uniforms in [0, 1) for the image at each position:
            crop row, crop column, flip (flip when < 0.5).
    """
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(n).astype(np.int64)
    draws = rng.random((n, DRAWS), dtype=np.float32)
    return order, draws


def normalize(images: tf.Tensor, spec: DatasetSpec) -> tf.Tensor:
    """float32 ``(images / 255 - mean) / std`` per channel; images (..., 3) in [0, 255]."""
    mean = tf.constant(spec.mean, tf.float32)
    std = tf.constant(spec.std, tf.float32)
    return (tf.cast(images, tf.float32) / 255.0 - mean) / std


def _offsets(draws: tf.Tensor, room: tf.Tensor) -> tf.Tensor:
    """int32 crop offsets in 0..room from uniforms in [0, 1)."""
    room = tf.cast(room, tf.float32)
    return tf.cast(tf.minimum(tf.floor(draws * (room + 1.0)), room), tf.int32)


def pad_crop_flip(images: tf.Tensor, draws: tf.Tensor, flip: bool, pad: int = PAD) -> tf.Tensor:
    """The 32-px training augmentation of a batch.

    Args:
        images: uint8 (B, S, S, 3).
        draws: float32 (B, 3) uniforms: crop row, crop column, flip (< 0.5).
        flip: whether flips are allowed at all (``spec.flip``).

    Returns:
        uint8 (B, S, S, 3): zero-padded by ``pad``, cropped at offsets
        ``floor(u * (2 pad + 1))``, mirrored left-right where chosen.
    """
    size = images.shape[1]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = _offsets(draws[:, 0], 2 * pad)[:, None] + tf.range(size)[None, :]
    cols = tf.range(size)[None, :]
    if flip:
        mirrored = draws[:, 2:3] < 0.5
        cols = tf.where(mirrored, size - 1 - cols, cols)
    cols = _offsets(draws[:, 1], 2 * pad)[:, None] + cols
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def _decode(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _resize_shorter(image: tf.Tensor, shorter: int) -> tf.Tensor:
    """float32 (h', w', 3) with min(h', w') == shorter, aspect kept."""
    height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float32))
    scale = shorter / tf.minimum(height, width)
    new_size = tf.maximum(tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32), shorter)
    return tf.image.resize(image, new_size, method="bilinear", antialias=True)


def large_train_image(encoded: tf.Tensor, draws: tf.Tensor, size: int, flip: bool) -> tf.Tensor:
    """float32 (S, S, 3) in [0, 255]: decode, shorter side to 9/8 S, random crop, flip."""
    image = _resize_shorter(_decode(encoded), train_resize(size))
    room = tf.shape(image)[:2] - size
    top = _offsets(draws[0], room[0])
    left = _offsets(draws[1], room[1])
    image = image[top:top + size, left:left + size]
    if flip:
        image = tf.cond(draws[2] < 0.5, lambda: image[:, ::-1], lambda: image)
    image.set_shape([size, size, 3])
    return image


def large_eval_image(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """float32 (S, S, 3) in [0, 255]: decode, shorter side to 9/8 S, centre crop."""
    image = _resize_shorter(_decode(encoded), train_resize(size))
    room = tf.shape(image)[:2] - size
    top, left = room[0] // 2, room[1] // 2
    image = image[top:top + size, left:left + size]
    image.set_shape([size, size, 3])
    return image


class _Finisher:
    """Normalises, lays out (channels_first) and labels a batch of images."""

    def __init__(self, data: SplitData, spec: DatasetSpec, one_hot: bool):
        self.spec = spec
        self.labels = tf.constant(data.labels, tf.int32)
        self.num_classes = data.num_classes
        self.one_hot = one_hot
        self.channels_first = keras.config.image_data_format() == "channels_first"

    def __call__(self, images: tf.Tensor, index: tf.Tensor):
        images = normalize(images, self.spec)
        if self.channels_first:
            images = tf.transpose(images, [0, 3, 1, 2])
        labels = tf.gather(self.labels, index)
        if self.one_hot:
            labels = tf.one_hot(labels, self.num_classes, dtype=tf.float32)
        return images, labels


def _check(data: SplitData, spec: DatasetSpec, batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    if len(data) == 0:
        raise ValueError(f"no images in {data.description}")
    if data.image_size != spec.image_size:
        raise ValueError(f"data of {data.image_size} px for {spec.name} ({spec.image_size} px)")


def _is_large(data: SplitData) -> bool:
    return data.is_encoded or data.image_size >= LARGE_IMAGE_SIZE


def train_dataset(
    data: SplitData,
    spec: DatasetSpec,
    *,
    batch_size: int,
    seed: int,
    start_epoch: int = 0,
    epochs: int,
    augment: bool = True,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """Training batches of epochs ``start_epoch .. epochs-1`` (0-based), in one stream.

    Yields exactly ``steps_per_epoch(len(data), batch_size) * (epochs - start_epoch)``
    batches ``(float32 (B, S, S, 3) images, int32 (B,) labels)``, B = batch_size but
    the last of each epoch. Epoch e depends only on ``(seed, e)`` (`epoch_plan`).
    ``augment=False`` keeps the shuffled order but no crop/flip (256 px: centre crop).
    """
    _check(data, spec, batch_size)
    if not 0 <= start_epoch <= epochs:
        raise ValueError(f"need 0 <= start_epoch <= epochs, got {start_epoch} and {epochs}")
    n = len(data)
    finish = _Finisher(data, spec, one_hot)

    def plan(epoch):
        order, draws = tf.numpy_function(
            lambda e: epoch_plan(n, seed, int(e)), [epoch], (tf.int64, tf.float32))
        order.set_shape([n])
        draws.set_shape([n, DRAWS])
        return tf.data.Dataset.from_tensor_slices((order, draws))

    epochs_ds = tf.data.Dataset.range(start_epoch, epochs)
    if _is_large(data):
        encoded = tf.constant(np.asarray(data.encoded, dtype=object), tf.string)
        size = spec.image_size

        def one(index, draws):
            if augment:
                image = large_train_image(encoded[index], draws, size, spec.flip)
            else:
                image = large_eval_image(encoded[index], size)
            return image, index

        batches = epochs_ds.flat_map(
            lambda e: plan(e).map(one, num_parallel_calls=AUTOTUNE).batch(batch_size))
        batches = batches.map(finish, num_parallel_calls=AUTOTUNE)
    else:
        images = tf.constant(data.images)

        def augment_batch(index, draws):
            batch = tf.gather(images, index)
            if augment:
                batch = pad_crop_flip(batch, draws, spec.flip)
            return finish(batch, index)

        batches = epochs_ds.flat_map(lambda e: plan(e).batch(batch_size))
        batches = batches.map(augment_batch, num_parallel_calls=AUTOTUNE)
    total = steps_per_epoch(n, batch_size) * (epochs - start_epoch)
    return batches.apply(tf.data.experimental.assert_cardinality(total)).prefetch(AUTOTUNE)


def eval_dataset(data: SplitData, spec: DatasetSpec, batch_size: int, *,
                 one_hot: bool = False) -> tf.data.Dataset:
    """All images in order, no augmentation: ``(float32 (B, S, S, 3), int32 (B,))`` batches."""
    _check(data, spec, batch_size)
    finish = _Finisher(data, spec, one_hot)
    index = tf.data.Dataset.range(len(data))
    if _is_large(data):
        encoded = tf.constant(np.asarray(data.encoded, dtype=object), tf.string)
        size = spec.image_size
        batches = (index.map(lambda i: (large_eval_image(encoded[i], size), i),
                             num_parallel_calls=AUTOTUNE)
                   .batch(batch_size)
                   .map(finish, num_parallel_calls=AUTOTUNE))
    else:
        images = tf.constant(data.images)
        batches = index.batch(batch_size).map(
            lambda i: finish(tf.gather(images, i), i), num_parallel_calls=AUTOTUNE)
    return batches.prefetch(AUTOTUNE)


def pipeline_rate(data: SplitData, spec: DatasetSpec, *, batch_size: int | None = None,
                  seed: int = 0, batches: int = 50, augment: bool = True) -> float:
    """Images per second of iterating the training pipeline (after one warm-up batch).

    Iterates at most ``batches`` batches (fewer if the data has fewer in an epoch).
    """
    batch_size = batch_size or spec.batch_size
    steps = steps_per_epoch(len(data), batch_size)
    epochs = math.ceil((batches + 1) / steps)
    iterator = iter(train_dataset(data, spec, batch_size=batch_size, seed=seed,
                                  epochs=epochs, augment=augment))
    next(iterator)
    count, start = 0, time.perf_counter()
    for _, (images, _labels) in zip(range(batches), iterator):
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)
