"""The training augmentation, defined once for both input pipelines.

Both pipelines (`keras_gdfr.data.device_pipeline` with `keras.ops` on the active
backend, `keras_gdfr.data.pipeline` with TensorFlow ops inside tf.data) call the
same `augment_batch`; only the ops namespace differs (`ops_for`). No TensorFlow here.

What is applied, given `Augmentation` (the recipe's ``[augment]`` keys) and the
model's input side S (``spec.image_size``):

1. ``prepare`` (once per image, numpy/PIL, before any batch): shorter side resized
   to R = ``resize`` (aspect kept, bilinear, antialiased), then the centre R x R
   square. 32-px datasets arrive decoded at S x S, so R = S is the identity.
   256-px datasets: R = 9/8 S = 288 by default (`train_resize`).
2. Training (`augment_batch` with ``train=True``): zero-pad by ``pad`` (black, in
   uint8), random S x S crop at offsets ``min(floor(u * (room + 1)), room)``,
   room = R + 2 pad - S, horizontal flip when ``flip`` and u < 0.5.
   Evaluation: the centre S x S crop of the R x R image, no pad, no flip.
3. ``normalize``: ``(x / 255 - mean) / std`` per channel; off: float32 in 0..255.

The uniforms ``u`` come from `epoch_plan(N, seed, epoch)`: numpy
``default_rng([seed, epoch])`` gives a permutation and three uniforms per position
(crop row, crop column, flip), so epoch e depends only on (seed, e) (exact resume).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_gdfr.data.specs import LARGE_IMAGE_SIZE  # at or above: the 256-px recipe (resize + crop, no pad)

DRAWS = 3  # uniforms per image and epoch: crop row, crop column, flip
PAD = 4  # the paper's 32-px padding
PIPELINES = ("auto", "device", "tf.data")  # the recipe's data.pipeline values


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch of ``n`` images: ceil(n / batch_size), last one partial."""
    return math.ceil(n / batch_size)


def train_resize(image_size: int) -> int:
    """Default shorter side of the 256-px images before cropping: 9/8 S (288 for 256)."""
    return round(image_size * 9 / 8)


def default_pad(spec) -> int:
    """``[augment] pad`` default: 4 at 32 px (Table 2), 0 at 256 px (the crop comes from the resize)."""
    return PAD if spec.image_size < LARGE_IMAGE_SIZE else 0


def default_resize(spec) -> int:
    """``[augment] resize`` default: S at 32 px (images resized whole), 9/8 S at 256 px."""
    return spec.image_size if spec.image_size < LARGE_IMAGE_SIZE else train_resize(spec.image_size)


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


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The ``[augment]`` keys plus the dataset facts the augmentation needs.

    size: S, the model's input side. resize: R, the stored square side (>= S).
    pad: zero padding before the random crop. flip, normalize: as the recipe says.
    mean, std: per-channel statistics on [0, 1] images (``spec.mean``, ``spec.std``).
    """

    size: int
    resize: int
    pad: int
    flip: bool
    normalize: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self):
        if self.resize < self.size:
            raise ValueError(f"resize {self.resize} is smaller than the {self.size}-px crop")
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, not {self.pad}")

    @classmethod
    def for_spec(cls, spec, *, pad=None, resize=None, flip=None, normalize=True) -> "Augmentation":
        """The paper's augmentation for `spec` (a `DatasetSpec`), any key overridden."""
        return cls(
            size=spec.image_size,
            resize=int(resize if resize is not None else default_resize(spec)),
            pad=int(pad if pad is not None else default_pad(spec)),
            flip=bool(spec.flip if flip is None else flip),
            normalize=bool(normalize),
            mean=tuple(spec.mean),
            std=tuple(spec.std),
        )

    @property
    def room(self) -> int:
        """Crop offsets run over 0..room (training)."""
        return self.resize + 2 * self.pad - self.size


# ---------------------------------------------------------------------------
# Step 1: every image to a uint8 R x R square (numpy/PIL; shared by both pipelines).


def prepare_image(image, resize: int) -> np.ndarray:
    """uint8 (R, R, 3): shorter side to R (aspect kept, bilinear), centre square.

    ``image``: encoded bytes or a uint8 (H, W, 3) array.
    """
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        pil = Image.open(io.BytesIO(bytes(image)))
        if pil.format == "JPEG":
            pil.draft("RGB", (resize, resize))  # DCT-domain downscale, never below R: fast
        pil = pil.convert("RGB")
    else:
        array = np.asarray(image, dtype=np.uint8)
        if array.shape[0] == array.shape[1] == resize:
            return array
        pil = Image.fromarray(array)
    width, height = pil.size
    scale = resize / min(width, height)
    new = (max(resize, round(width * scale)), max(resize, round(height * scale)))
    if new != (width, height):
        pil = pil.resize(new, Image.BILINEAR)  # PIL filters over the source support: antialiased
    left, top = (new[0] - resize) // 2, (new[1] - resize) // 2
    return np.asarray(pil.crop((left, top, left + resize, top + resize)), dtype=np.uint8)


def prepare_split(data, resize: int) -> np.ndarray:
    """uint8 (N, R, R, 3) of a `SplitData` (decoded images or encoded files), in order."""
    if not data.is_encoded and data.image_size == resize:
        return data.images
    items = data.encoded if data.is_encoded else list(data.images)
    out = np.empty((len(items), resize, resize, 3), np.uint8)

    def one(i):
        out[i] = prepare_image(items[i], resize)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL releases the GIL
        list(pool.map(one, range(len(items))))
    return out


def prepared_nbytes(n: int, resize: int) -> int:
    """Bytes of ``n`` prepared images of side R."""
    return int(n) * resize * resize * 3


# ---------------------------------------------------------------------------
# Steps 2-3: one batch (the shared definition).


class Ops:
    """The few ops `augment_batch` needs: `keras.ops` (``backend=None``) or one backend's own.

    tf.data on the torch/jax backends runs TensorFlow graphs, so it takes Keras's
    TensorFlow implementation of the same ops (``backend="tensorflow"``).

    `const` gives the constants of a batch (offsets' bounds, mean, std, class ids) as
    tensors. With ``keras.ops`` (the device pipeline, eager) each is made once and kept
    on the device: a Python number handed to an op would be uploaded on every batch,
    and on a GPU each such copy waits for the queued work (9 a batch before this;
    tests/test_device_standin.py counts them). In tf.data's graphs they are graph constants.
    """

    def __init__(self, backend: str | None = None):
        self._constants = {} if backend is None else None
        if backend is None:
            import keras

            self.np = keras.ops
            self.cast = keras.ops.cast
            self.shape = keras.ops.shape
            self.tensor = keras.ops.convert_to_tensor
        else:
            import importlib

            module = importlib.import_module(f"keras.src.backend.{backend}")
            self.np = module.numpy
            self.cast = module.core.cast
            self.shape = module.core.shape
            self.tensor = module.core.convert_to_tensor


    def const(self, value, dtype: str):
        """`value` (a number or a tuple of numbers) as a `dtype` tensor, made once per `Ops` when eager."""
        if self._constants is None:
            return self.tensor(value, dtype=dtype)
        key = (value, dtype)
        if key not in self._constants:
            self._constants[key] = self.tensor(value, dtype=dtype)
        return self._constants[key]


def ops_for(backend: str | None = None) -> Ops:
    return Ops(backend)


def _offsets(ops: Ops, u, room: int):
    """int32 crop offsets in 0..room from float32 uniforms in [0, 1)."""
    x = ops.np.floor(u * ops.const(float(room + 1), "float32"))
    return ops.cast(ops.np.minimum(x, ops.const(float(room), "float32")), "int32")


def augment_batch(ops: Ops, images, draws, aug: Augmentation, *, train: bool, channels_first: bool = False):
    """uint8 (B, R, R, 3) prepared images -> float32 (B, S, S, 3) (or (B, 3, S, S)).

    ``draws``: float32 (B, 3) uniforms (crop row, crop column, flip); unused when
    ``train`` is False (centre crop). One gather: every output pixel's source pixel
    is computed, out-of-image (padding) pixels masked to 0.
    """
    np_ = ops.np
    size, resize, pad = aug.size, aug.resize, aug.pad
    span = np_.arange(size, dtype="int32")[None, :]  # (1, S)
    if train:
        top = _offsets(ops, draws[:, 0], aug.room)[:, None] - pad  # (B, 1), in unpadded coordinates
        left = _offsets(ops, draws[:, 1], aug.room)[:, None] - pad
        rows = top + span
        cols = span
        if aug.flip:
            cols = np_.where(draws[:, 2:3] < 0.5, (size - 1) - span, span)
        cols = left + cols
    else:
        offset = (resize - size) // 2
        rows = span + offset
        cols = span + offset
        batch = ops.shape(images)[0]
        rows = np_.broadcast_to(rows, (batch, size))
        cols = np_.broadcast_to(cols, (batch, size))
    inside = np_.logical_and(
        np_.logical_and(rows[:, :, None] >= 0, rows[:, :, None] < resize),
        np_.logical_and(cols[:, None, :] >= 0, cols[:, None, :] < resize),
    )  # (B, S, S)
    low, high = ops.const(0, "int32"), ops.const(resize - 1, "int32")
    rows = np_.clip(rows, low, high)
    cols = np_.clip(cols, low, high)
    batch = ops.shape(images)[0]
    base = np_.arange(batch, dtype="int32")[:, None, None] * (resize * resize)
    index = base + rows[:, :, None] * resize + cols[:, None, :]  # (B, S, S) into (B*R*R, 3)
    flat = np_.reshape(images, (-1, 3))
    pixels = ops.cast(np_.take(flat, np_.reshape(index, (-1,)), axis=0), "float32")
    pixels = np_.reshape(pixels, (batch, size, size, 3)) * ops.cast(inside, "float32")[..., None]
    if aug.normalize:
        mean = ops.const(tuple(float(m) for m in aug.mean), "float32")
        std = ops.const(tuple(float(s) for s in aug.std), "float32")
        pixels = (pixels / 255.0 - mean) / std
    if channels_first:
        pixels = np_.transpose(pixels, (0, 3, 1, 2))
    return pixels


def finish_labels(ops: Ops, labels, num_classes: int, one_hot: bool):
    """int32 (B,) labels, or float32 one-hot (B, K) (for a loss with label smoothing)."""
    labels = ops.cast(labels, "int32")
    if one_hot:  # one_hot without its per-call constants: label == class id
        classes = ops.const(tuple(range(num_classes)), "int32")
        return ops.cast(ops.np.equal(ops.np.expand_dims(labels, 1), classes), "float32")
    return labels
