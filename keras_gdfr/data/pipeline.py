"""The tf.data input pipeline (``data.pipeline = "tf.data"``): host-side, streaming, TensorFlow needed.

Batches are ``(images, labels)``: float32 images, NHWC (NCHW when
``keras.config.image_data_format() == "channels_first"``, read when the dataset is
built), and int32 labels (N,) (or float32 one-hot (N, K) with ``one_hot=True``,
for a loss with label smoothing). A tf.data.Dataset feeds ``model.fit`` on the
tensorflow, torch and jax backends alike. TensorFlow is imported on first use
through `keras_gdfr.data.tf_runtime` (quiet, and off the GPUs on torch/jax); this
module itself imports without it.

The augmentation is `keras_gdfr.data.augment` (one definition, shared with the
device pipeline): 32-px images are held as one uint8 constant and gathered per
batch; 256-px files stay encoded and are prepared per image (`augment.prepare_image`,
decode + shorter side to R + centre square) in parallel map calls, then cropped,
flipped and normalised per batch with TensorFlow's implementation of the same ops.

Determinism (for resume): `train_dataset` yields the batches of epochs
``start_epoch .. epochs-1``, ``steps_per_epoch(N, batch_size)`` each (the last one
partial). Epoch e's order and augmentation come only from `epoch_plan(N, seed, e)`,
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

from keras_gdfr.data.augment import (  # noqa: F401  (re-exported: the pipeline's public names)
    DRAWS, PAD, Augmentation, augment_batch, epoch_plan, finish_labels, ops_for, prepare_image,
    steps_per_epoch, train_resize,
)
from keras_gdfr.data.split import SplitData
from keras_gdfr.data.tf_runtime import import_tensorflow


def _tf():
    return import_tensorflow("the tf.data input pipeline")


def resolve_augmentation(spec, aug: Augmentation | None) -> Augmentation:
    """`aug`, or the paper's augmentation for `spec` (a `DatasetSpec`)."""
    return aug if aug is not None else Augmentation.for_spec(spec)


def check_inputs(data: SplitData, spec, batch_size: int) -> None:
    """ValueError naming the problem: batch size, empty split, image size vs spec."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    if len(data) == 0:
        raise ValueError(f"no images in {data.description}")
    if data.image_size != spec.image_size:
        raise ValueError(f"data of {data.image_size} px for {spec.name} ({spec.image_size} px)")


def _channels_first() -> bool:
    return keras.config.image_data_format() == "channels_first"


def _held_decoded(data: SplitData, aug: Augmentation) -> bool:
    """True when the split's images are already the prepared R x R squares (32 px, R = S)."""
    return not data.is_encoded and data.image_size == aug.resize


def _prepared_images(tf, data: SplitData, aug: Augmentation, index_ds):
    """Map (index, ...) -> (uint8 (R, R, 3) prepared image, index, ...), per image, in parallel."""
    size = aug.resize
    items = data.encoded if data.is_encoded else data.images

    def load(i):
        return prepare_image(items[int(i)], size)

    def one(i, *rest):
        image = tf.numpy_function(load, [i], tf.uint8)
        image.set_shape([size, size, 3])
        return (image, i, *rest)

    return index_ds.map(one, num_parallel_calls=tf.data.AUTOTUNE)


def train_dataset(
    data: SplitData,
    spec,
    *,
    batch_size: int,
    seed: int,
    start_epoch: int = 0,
    epochs: int,
    augment: bool = True,
    one_hot: bool = False,
    augmentation: Augmentation | None = None,
):
    """Training batches of epochs ``start_epoch .. epochs-1`` (0-based), in one stream.

    Yields exactly ``steps_per_epoch(len(data), batch_size) * (epochs - start_epoch)``
    batches ``(float32 (B, S, S, 3) images, int32 (B,) labels)``, B = batch_size but
    the last of each epoch. Epoch e depends only on ``(seed, e)`` (`epoch_plan`).
    ``augment=False`` keeps the shuffled order but no pad/crop/flip (centre crop).
    """
    tf = _tf()
    check_inputs(data, spec, batch_size)
    if not 0 <= start_epoch <= epochs:
        raise ValueError(f"need 0 <= start_epoch <= epochs, got {start_epoch} and {epochs}")
    aug = resolve_augmentation(spec, augmentation)
    ops = ops_for("tensorflow")
    n = len(data)
    labels = tf.constant(data.labels, tf.int32)
    channels_first = _channels_first()

    def plan(epoch):
        order, draws = tf.numpy_function(
            lambda e: epoch_plan(n, seed, int(e)), [epoch], (tf.int64, tf.float32))
        order.set_shape([n])
        draws.set_shape([n, DRAWS])
        return tf.data.Dataset.from_tensor_slices((order, draws))

    def finish(images, index, draws):
        x = augment_batch(ops, images, draws, aug, train=augment, channels_first=channels_first)
        return x, finish_labels(ops, tf.gather(labels, index), data.num_classes, one_hot)

    epochs_ds = tf.data.Dataset.range(start_epoch, epochs)
    if _held_decoded(data, aug):
        images = tf.constant(data.images)
        batches = epochs_ds.flat_map(lambda e: plan(e).batch(batch_size)).map(
            lambda i, d: finish(tf.gather(images, i), i, d), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        batches = epochs_ds.flat_map(
            lambda e: _prepared_images(tf, data, aug, plan(e)).batch(batch_size)
        ).map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    total = steps_per_epoch(n, batch_size) * (epochs - start_epoch)
    return batches.apply(tf.data.experimental.assert_cardinality(total)).prefetch(tf.data.AUTOTUNE)


def eval_dataset(data: SplitData, spec, batch_size: int, *, one_hot: bool = False,
                 augmentation: Augmentation | None = None):
    """All images in order, no augmentation: ``(float32 (B, S, S, 3), int32 (B,))`` batches."""
    tf = _tf()
    check_inputs(data, spec, batch_size)
    aug = resolve_augmentation(spec, augmentation)
    ops = ops_for("tensorflow")
    labels = tf.constant(data.labels, tf.int32)
    channels_first = _channels_first()

    def finish(images, index):
        x = augment_batch(ops, images, None, aug, train=False, channels_first=channels_first)
        return x, finish_labels(ops, tf.gather(labels, index), data.num_classes, one_hot)

    index = tf.data.Dataset.range(len(data))
    if _held_decoded(data, aug):
        images = tf.constant(data.images)
        batches = index.batch(batch_size).map(lambda i: finish(tf.gather(images, i), i),
                                              num_parallel_calls=tf.data.AUTOTUNE)
    else:
        batches = _prepared_images(tf, data, aug, index).batch(batch_size).map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def pipeline_rate(data: SplitData, spec, *, batch_size: int | None = None,
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
