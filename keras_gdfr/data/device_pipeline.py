"""The device-resident input pipeline (``data.pipeline = "device"``): no TensorFlow, no workers.

The prepared uint8 split (`augment.prepare_split`: R x R squares, 150 MiB for
CIFAR-10's 50,000 train images, 2.2 GiB for Imagenette's at R = 288) lives on the
accelerator (in host memory on a CPU), and every batch is gathered and augmented
there with `keras.ops`, on torch, jax and tensorflow alike: one gather, pad + crop +
flip, normalise, lay out (`augment.augment_batch`, the definition the tf.data
pipeline uses too). Same batches as `keras_gdfr.data.pipeline` for the same
(seed, epoch), so `--resume` stays exact (tests/test_device_pipeline.py).

Use it as tf.data is used in `keras_gdfr.training.run`::

    aug = Augmentation.for_spec(spec)
    train = DeviceTrainData(split, aug, batch_size=128, seed=0, epochs=200)
    model.fit(train, epochs=200, initial_epoch=0, steps_per_epoch=train.steps_per_epoch,
              validation_data=DeviceEvalData(test, aug, batch_size=500), shuffle=False)

`DeviceTrainData` is one `keras.utils.PyDataset` over the batches of epochs
``start_epoch .. epochs-1``; with ``steps_per_epoch`` given, Keras keeps one iterator
across epochs, so batch k belongs to epoch ``start_epoch + k // steps_per_epoch``.
``shuffle=False`` in fit is required (Keras would otherwise permute the batch indexes).

``drop_remainder=True`` drops each epoch's last partial batch: every batch has one
shape (no recompilation of a compiled step for the last batch).

Torch only: ``memory_format="channels_last"`` hands the model NCHW-shaped tensors
stored NHWC (a permuted view): PyTorch's GPU convolutions then run their NHWC kernels.
Use it on GPUs only: on CPU, PyTorch 2.13's oneDNN backward of a strided 1x1
convolution on NHWC memory crashes (SIGSEGV) for odd batch sizes.

`choose_pipeline` is the ``data.pipeline = "auto"`` rule: device when the prepared
train + test splits fit `DEVICE_BUDGET_FRACTION` of the accelerator's memory (of
the host's RAM on a CPU), else tf.data.
"""

from __future__ import annotations

import math
import os
import time

import keras
import numpy as np

from keras_gdfr.data.augment import (  # noqa: F401  (epoch_plan re-exported)
    PIPELINES, Augmentation, augment_batch, epoch_plan, finish_labels, ops_for, prepare_split, prepared_nbytes,
)

MEMORY_FORMATS = ("contiguous", "channels_last")
DEVICE_BUDGET_FRACTION = 0.25  # of the accelerator's memory (host RAM on a CPU) for the prepared splits
GIB = 2**30


# ---------------------------------------------------------------------------
# Choosing the pipeline.


def device_memory() -> tuple[str, int | None]:
    """(device name, its memory in bytes) of the backend's first accelerator, else the host's RAM."""
    backend = keras.backend.backend()
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return "cuda:0", int(torch.cuda.get_device_properties(0).total_memory)
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                stats = device.memory_stats() or {}
                return f"{device.platform}:0", stats.get("bytes_limit")
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return "GPU:0", None  # TensorFlow does not report a GPU's total memory
    except Exception:  # a broken CUDA install: fall back to the host
        pass
    try:
        return "host", int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return "host", None


def choose_pipeline(setting: str, nbytes: int, *, tf_available: bool | None = None) -> tuple[str, str]:
    """("device" | "tf.data", the reason in words) for a ``data.pipeline`` setting.

    ``nbytes``: the prepared train + test splits (`augment.prepared_nbytes`).
    """
    if setting not in PIPELINES:
        raise ValueError(f"data.pipeline must be one of {PIPELINES}, not {setting!r}")
    if setting != "auto":
        return setting, f"data.pipeline = {setting!r} in the recipe"
    if tf_available is None:
        from keras_gdfr.data import tf_runtime

        tf_available = tf_runtime.available()
    name, total = device_memory()
    size = f"{nbytes / 2**20:.0f} MiB"
    if total is None:
        return "device", f"auto: {size} of prepared images; {name} memory unknown, assumed to fit"
    budget = total * DEVICE_BUDGET_FRACTION
    where = f"{DEVICE_BUDGET_FRACTION:.0%} of {name}'s {total / GIB:.1f} GiB"
    if nbytes <= budget:
        return "device", f"auto: {size} of prepared images fit the device budget ({where})"
    if tf_available:
        return "tf.data", f"auto: {size} of prepared images exceed the device budget ({where})"
    return "device", f"auto: {size} exceed the device budget ({where}), but tf.data needs TensorFlow (not installed)"


# ---------------------------------------------------------------------------
# The device-resident split.


def default_device():
    """The device the backend puts new tensors on (torch: cuda when there is one)."""
    return getattr(keras.ops.convert_to_tensor(np.zeros(1, np.float32)), "device", None)


def _to_device(array: np.ndarray, device=None):
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return torch.as_tensor(array).to(device if device is not None else default_device())
    if backend == "tensorflow":
        import tensorflow as tf

        target = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
        with tf.device(device or target):
            return tf.identity(tf.convert_to_tensor(array))
    return keras.ops.convert_to_tensor(array)  # jax: the default device


class _DeviceImages:
    """The prepared uint8 split and int32 labels on the device, with the per-batch transform."""

    def __init__(self, data, aug: Augmentation, *, data_format=None, memory_format="contiguous",
                 one_hot=True, device=None, dtype="float32", images=None):
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, not {memory_format!r}")
        if memory_format == "channels_last" and keras.backend.backend() != "torch":
            raise ValueError("memory_format='channels_last' is a torch option")
        if len(data) == 0:
            raise ValueError(f"no images in {data.description}")
        if data.image_size != aug.size:
            raise ValueError(f"data of {data.image_size} px for a {aug.size}-px augmentation")
        prepared = prepare_split(data, aug.resize) if images is None else np.asarray(images, np.uint8)
        self.images = _to_device(prepared, device)
        self.labels = _to_device(np.asarray(data.labels, np.int32), device)
        self.n = len(data)
        self.num_classes = data.num_classes
        self.aug = aug
        self.one_hot = one_hot
        self.channels_first = (data_format or keras.config.image_data_format()) == "channels_first"
        self.memory_format = memory_format
        self.dtype = dtype
        self.ops = ops_for(None)

    def __len__(self) -> int:
        return self.n

    def batch(self, index, draws, train: bool):
        """(images, labels) of the images at device ``index`` (int32 (B,)) with their ``draws``."""
        ops = self.ops
        images = ops.np.take(self.images, index, axis=0)
        x = augment_batch(ops, images, draws, self.aug, train=train, channels_first=self.channels_first)
        if self.dtype != "float32":
            x = ops.cast(x, self.dtype)
        if self.memory_format == "channels_last" and self.channels_first:
            import torch

            x = x.contiguous(memory_format=torch.channels_last)
        y = finish_labels(ops, ops.np.take(self.labels, index, axis=0), self.num_classes, self.one_hot)
        return x, y


class DeviceTrainData(keras.utils.PyDataset):
    """Training batches of epochs ``start_epoch .. epochs-1`` (0-based) cut from the device-resident split.

    Args:
        data: a `SplitData` (decoded 32-px images or encoded 256-px files).
        aug: the `Augmentation` (recipe's ``[augment]``).
        batch_size, seed: as the tf.data pipeline's.
        epochs, start_epoch: the epochs to yield, as in `pipeline.train_dataset`.
        augment: pad-crop-flip (True) or the centre crop (the order stays shuffled).
        one_hot: float32 one-hot labels (for label smoothing) or int32 labels.
        drop_remainder: drop each epoch's last partial batch (one batch shape).
        data_format, memory_format, device, dtype: see the module docstring.
        images: the prepared uint8 (N, R, R, 3) when already at hand (skips `prepare_split`).
    """

    def __init__(self, data, aug: Augmentation, *, batch_size: int, seed: int, epochs: int,
                 start_epoch: int = 0, augment: bool = True, one_hot: bool = True,
                 drop_remainder: bool = False, data_format=None, memory_format="contiguous",
                 device=None, dtype="float32", images=None):
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if not 0 <= start_epoch <= epochs:
            raise ValueError(f"need 0 <= start_epoch <= epochs, got {start_epoch} and {epochs}")
        self.data = _DeviceImages(data, aug, data_format=data_format, memory_format=memory_format,
                                  one_hot=one_hot, device=device, dtype=dtype, images=images)
        n = len(self.data)
        if drop_remainder and n < batch_size:
            raise ValueError(f"drop_remainder with {n} images < batch_size {batch_size} leaves no batch")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.start_epoch = int(start_epoch)
        self.augment = augment
        self.steps_per_epoch = n // batch_size if drop_remainder else math.ceil(n / batch_size)
        self._plan_epoch = None
        self._order = self._draws = None

    def __len__(self) -> int:
        return self.steps_per_epoch * (self.epochs - self.start_epoch)

    def plan(self, epoch: int):
        """(order, draws) of `epoch` as device tensors (cached for the current epoch)."""
        if self._plan_epoch != epoch:
            order, draws = epoch_plan(len(self.data), self.seed, epoch)
            self._order = _to_device(order.astype(np.int32))
            self._draws = _to_device(draws)
            self._plan_epoch = epoch
        return self._order, self._draws

    def batch(self, epoch: int, step: int):
        """Batch `step` of `epoch`: (images, labels), a function of (seed, epoch, step) only."""
        order, draws = self.plan(epoch)
        start = step * self.batch_size
        stop = min(start + self.batch_size, len(self.data))
        return self.data.batch(order[start:stop], draws[start:stop], self.augment)

    def __getitem__(self, k: int):
        if not 0 <= k < len(self):
            raise IndexError(k)
        epoch, step = divmod(int(k), self.steps_per_epoch)
        return self.batch(self.start_epoch + epoch, step)


class DeviceEvalData(keras.utils.PyDataset):
    """All images in order, centre crop, no augmentation, from the device-resident split."""

    def __init__(self, data, aug: Augmentation, *, batch_size: int, one_hot: bool = True, data_format=None,
                 memory_format="contiguous", device=None, dtype="float32", images=None):
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        self.data = _DeviceImages(data, aug, data_format=data_format, memory_format=memory_format,
                                  one_hot=one_hot, device=device, dtype=dtype, images=images)
        self.batch_size = int(batch_size)
        self._index = _to_device(np.arange(len(self.data), dtype=np.int32))

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = i * self.batch_size
        index = self._index[start:min(start + self.batch_size, len(self.data))]
        return self.data.batch(index, None, False)


def _sync(x) -> None:
    """Wait for the device: converting one element to numpy blocks until the batch is computed."""
    keras.ops.convert_to_numpy(keras.ops.reshape(x, (-1,))[:1])


def device_pipeline_rate(data, aug: Augmentation, *, batch_size: int, seed: int = 0, batches: int = 50,
                         data_format=None, memory_format="contiguous") -> float:
    """Images per second of producing augmented training batches on the device (after one warm-up)."""
    train = DeviceTrainData(data, aug, batch_size=batch_size, seed=seed, epochs=10**6,
                            data_format=data_format, memory_format=memory_format)
    _sync(train[0][0])
    start = time.perf_counter()
    count = 0
    x = None
    for k in range(1, batches + 1):
        x, _ = train[k]
        count += int(x.shape[0])
    _sync(x)
    return count / (time.perf_counter() - start)
