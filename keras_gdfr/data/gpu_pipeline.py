"""A device-resident input pipeline for the torch backend: no TensorFlow, no DataLoader workers.

For 32-px datasets (CIFAR, SVHN, GTSRB) the whole split fits on an accelerator as
uint8 (CIFAR-10's 50,000 train images are 150 MiB), so every batch is cut out of
that tensor and augmented on the device in a few kernels: gather, pad 4 + random
32x32 crop, horizontal flip, normalise, lay out. The device image of the GPU
machines has PyTorch but no TensorFlow, so this is the training input there
(`keras_gdfr.data.pipeline`, tf.data, stays the path everywhere TensorFlow is).

Same batches as the tf.data pipeline: epoch e's order and augmentation come from
`epoch_plan(N, seed, e)`, the same function (numpy ``default_rng([seed, e])``: a
permutation and three uniforms per position) as `keras_gdfr.data.pipeline.epoch_plan`,
and the crop/flip/normalisation follow `pipeline.pad_crop_flip` and `pipeline.normalize`
exactly, so for the same (seed, epoch) both yield the same images and labels
(tests/test_gpu_pipeline.py compares them).

Use it as tf.data is used in `keras_gdfr.training.run`::

    train = DeviceTrainData(split.images, split.labels, spec, batch_size=128, seed=0, epochs=200)
    model.fit(train, epochs=200, initial_epoch=0, steps_per_epoch=train.steps_per_epoch,
              validation_data=DeviceEvalData(test.images, test.labels, spec, batch_size=500),
              shuffle=False)

`DeviceTrainData` is one `keras.utils.PyDataset` over the batches of epochs
``start_epoch .. epochs-1``; with ``steps_per_epoch`` given, Keras keeps one iterator
across epochs, so batch k belongs to epoch ``start_epoch + k // steps_per_epoch``:
a function of (seed, epoch) only, which makes resume exact. ``shuffle=False`` in
fit is required (Keras would otherwise permute the PyDataset's batch indexes).

``drop_remainder=True`` drops each epoch's last partial batch (different images
each epoch, since the order is shuffled): every batch has one shape, which a
compiled (``jit_compile=True``) train step needs to avoid recompiling.

Layout: batches follow ``keras.config.image_data_format()`` (read at construction)
or ``data_format``. With channels_first, ``memory_format="channels_last"`` hands
the model NCHW-shaped tensors stored NHWC (a permuted view, no copy): PyTorch's
convolutions then run their NHWC kernels (tensor cores) and propagate that layout.
Use it on GPUs only: on CPU, PyTorch 2.13's oneDNN backward of a strided 1x1
convolution on NHWC memory crashes (SIGSEGV) for odd batch sizes (3, 5, 7, 37, ...).
"""

from __future__ import annotations

import math

import keras
import numpy as np

PAD = 4
DRAWS = 3
MEMORY_FORMATS = ("contiguous", "channels_last")


def epoch_plan(n: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The order and augmentation draws of one epoch (= `keras_gdfr.data.pipeline.epoch_plan`).

    Kept here, without TensorFlow, for machines that have none; the test suite
    checks that both functions agree.
    """
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(n).astype(np.int64)
    draws = rng.random((n, DRAWS), dtype=np.float32)
    return order, draws


def _torch():
    import torch

    return torch


def default_device():
    """The device the torch backend puts new tensors on (cuda when there is one)."""
    return keras.ops.convert_to_tensor(np.zeros(1, np.float32)).device


class _DeviceImages:
    """uint8 images and int labels on the device, with the per-batch transform."""

    def __init__(self, images, labels, spec, *, data_format=None, memory_format="contiguous",
                 num_classes=None, one_hot=True, device=None, dtype="float32"):
        if keras.backend.backend() != "torch":
            raise RuntimeError("keras_gdfr.data.gpu_pipeline needs the torch backend (KERAS_BACKEND=torch)")
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, not {memory_format!r}")
        torch = _torch()
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise ValueError("no images")
        self.device = torch.device(device) if device is not None else default_device()
        self.images = torch.as_tensor(images).to(self.device)
        self.labels = torch.as_tensor(labels.astype(np.int64)).to(self.device)
        self.num_classes = int(num_classes or getattr(spec, "num_classes", None) or int(labels.max()) + 1)
        self.one_hot = one_hot
        self.flip = bool(spec.flip)
        self.mean = torch.tensor(spec.mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(spec.std, dtype=torch.float32, device=self.device)
        self.data_format = data_format or keras.config.image_data_format()
        self.memory_format = memory_format
        self.dtype = getattr(torch, dtype)
        self.size = images.shape[1]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def crop_flip(self, batch, draws):
        """uint8 (B, S, S, 3) -> zero-padded by PAD, cropped at floor(u * (2 PAD + 1)), mirrored where u2 < 0.5.

        `keras_gdfr.data.pipeline.pad_crop_flip`, in torch.
        """
        torch = _torch()
        size = self.size
        padded = torch.nn.functional.pad(batch, (0, 0, PAD, PAD, PAD, PAD))
        room = 2 * PAD
        top = torch.clamp(torch.floor(draws[:, 0] * (room + 1)), max=room).long()
        left = torch.clamp(torch.floor(draws[:, 1] * (room + 1)), max=room).long()
        span = torch.arange(size, device=batch.device)
        rows = top[:, None] + span[None, :]
        cols = span[None, :].expand(batch.shape[0], size)
        if self.flip:
            cols = torch.where(draws[:, 2:3] < 0.5, size - 1 - cols, cols)
        cols = left[:, None] + cols
        index = torch.arange(batch.shape[0], device=batch.device)[:, None, None]
        return padded[index, rows[:, :, None], cols[:, None, :]]

    def finish(self, batch, index):
        """Normalise ((x / 255 - mean) / std), lay out, label."""
        torch = _torch()
        x = (batch.to(torch.float32) / 255.0 - self.mean) / self.std
        if self.dtype != torch.float32:
            x = x.to(self.dtype)
        if self.data_format == "channels_first":
            x = x.permute(0, 3, 1, 2)
            if self.memory_format == "contiguous":
                x = x.contiguous()
        labels = self.labels[index]
        if self.one_hot:
            labels = torch.nn.functional.one_hot(labels, self.num_classes).to(torch.float32)
        else:
            labels = labels.to(torch.int32)
        return x, labels


class DeviceTrainData(keras.utils.PyDataset):
    """Training batches of epochs ``start_epoch .. epochs-1`` (0-based) cut from device-resident images.

    Args:
        images: uint8 (N, S, S, 3) (`SplitData.images`).
        labels: int (N,).
        spec: the `DatasetSpec` (mean, std, flip, num_classes).
        batch_size, seed: as the tf.data pipeline's.
        epochs, start_epoch: the epochs to yield, as in `pipeline.train_dataset`.
        augment: pad-crop-flip (True) or the images as they are (the order stays shuffled).
        one_hot: float32 one-hot labels (for label smoothing) or int32 labels.
        drop_remainder: drop each epoch's last partial batch (one batch shape).
        data_format, memory_format, device, dtype: see the module docstring.
    """

    def __init__(self, images, labels, spec, *, batch_size: int, seed: int, epochs: int,
                 start_epoch: int = 0, augment: bool = True, one_hot: bool = True,
                 drop_remainder: bool = False, data_format=None, memory_format="contiguous",
                 device=None, dtype="float32", num_classes=None):
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if not 0 <= start_epoch <= epochs:
            raise ValueError(f"need 0 <= start_epoch <= epochs, got {start_epoch} and {epochs}")
        self.data = _DeviceImages(images, labels, spec, data_format=data_format, memory_format=memory_format,
                                  num_classes=num_classes, one_hot=one_hot, device=device, dtype=dtype)
        n = len(self.data)
        if drop_remainder and n < batch_size:
            raise ValueError(f"drop_remainder with {n} images < batch_size {batch_size} leaves no batch")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.start_epoch = int(start_epoch)
        self.augment = augment
        self.drop_remainder = drop_remainder
        self.steps_per_epoch = n // batch_size if drop_remainder else math.ceil(n / batch_size)
        self._plan_epoch = None
        self._order = self._draws = None

    def __len__(self) -> int:
        return self.steps_per_epoch * (self.epochs - self.start_epoch)

    def plan(self, epoch: int):
        """(order, draws) of `epoch` as device tensors (cached for the current epoch)."""
        if self._plan_epoch != epoch:
            torch = _torch()
            order, draws = epoch_plan(len(self.data), self.seed, epoch)
            self._order = torch.as_tensor(order).to(self.data.device)
            self._draws = torch.as_tensor(draws).to(self.data.device)
            self._plan_epoch = epoch
        return self._order, self._draws

    def batch(self, epoch: int, step: int):
        """Batch `step` of `epoch`: (images, labels), a function of (seed, epoch, step) only."""
        order, draws = self.plan(epoch)
        start = step * self.batch_size
        index = order[start:start + self.batch_size]
        images = self.data.images[index]
        if self.augment:
            images = self.data.crop_flip(images, draws[start:start + self.batch_size])
        return self.data.finish(images, index)

    def __getitem__(self, k: int):
        if not 0 <= k < len(self):
            raise IndexError(k)
        epoch, step = divmod(int(k), self.steps_per_epoch)
        return self.batch(self.start_epoch + epoch, step)


class DeviceEvalData(keras.utils.PyDataset):
    """All images in order, no augmentation, from device-resident uint8 images (one pass per epoch)."""

    def __init__(self, images, labels, spec, *, batch_size: int, one_hot: bool = True, data_format=None,
                 memory_format="contiguous", device=None, dtype="float32", num_classes=None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.data = _DeviceImages(images, labels, spec, data_format=data_format, memory_format=memory_format,
                                  num_classes=num_classes, one_hot=one_hot, device=device, dtype=dtype)
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        torch = _torch()
        start = i * self.batch_size
        index = torch.arange(start, min(start + self.batch_size, len(self.data)), device=self.data.device)
        return self.data.finish(self.data.images[index], index)


def device_pipeline_rate(images, labels, spec, *, batch_size: int, seed: int = 0, batches: int = 50,
                         data_format=None, memory_format="contiguous") -> float:
    """Images per second of producing augmented training batches on the device (after one warm-up)."""
    import time

    torch = _torch()
    data = DeviceTrainData(images, labels, spec, batch_size=batch_size, seed=seed, epochs=10**6,
                           data_format=data_format, memory_format=memory_format)
    data[0]

    def sync():
        if data.data.device.type == "cuda":
            torch.cuda.synchronize(data.data.device)

    sync()
    start = time.perf_counter()
    count = 0
    for k in range(1, batches + 1):
        x, _ = data[k]
        count += int(x.shape[0])
    sync()
    return count / (time.perf_counter() - start)
