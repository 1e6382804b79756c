"""Subprocess helper of tests/test_device_standin.py: training, evaluation and the device pipeline
on the stand-in accelerator (tests/helpers/device_standin.py), and the same on the CPU.

Usage: KERAS_BACKEND=torch python -m tests.helpers.standin_checks  -> one JSON object on the last line.
One process for every check: the stand-in device is registered once per process, and each
start of Keras costs seconds.
"""

from __future__ import annotations

import contextlib
import json

import keras
import numpy as np
import torch

from keras_gdfr.data.augment import Augmentation
from keras_gdfr.data.device_pipeline import DeviceEvalData, DeviceTrainData
from keras_gdfr.data.specs import DATASETS
from keras_gdfr.data.split import SplitData
from keras_gdfr.layers import batch_norm
from keras_gdfr.models import GDFRNet
from keras_gdfr.training import distributed
from keras_gdfr.training.optimizer import TorchSGD, compile_for_training
from tests.helpers.device_standin import DeviceMismatch, keras_on_standin, record_uploads, register

AUG = Augmentation.for_spec(DATASETS["cifar10"])
DF = "channels_first"


def split(n: int, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    return SplitData(labels=rng.integers(0, 10, n), class_names=[str(i) for i in range(10)], description="synthetic",
                     image_size=32, images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


def model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    net = GDFRNet("tiny", input_shape=(3, 32, 32), num_classes=10, widths=(8, 8, 8, 8), reduction=4, data_format=DF)
    compile_for_training(net, TorchSGD(0.05))
    return net


def devices(tensors) -> list[str]:
    return sorted({str(t.device) for t in tensors})


def train_eval_predict() -> dict:
    """fit (device pipeline, a partial last batch, validation), evaluate, predict: what `gdfr train` does."""
    net = model()
    train = DeviceTrainData(split(12), AUG, batch_size=8, seed=0, epochs=2, data_format=DF)
    test = DeviceEvalData(split(10, seed=1), AUG, batch_size=8, data_format=DF)
    x, y = train[1]  # the partial batch
    history = net.fit(train, epochs=2, steps_per_epoch=train.steps_per_epoch, validation_data=test, shuffle=False,
                      verbose=0)
    return {"loss": history.history["loss"], "val_loss": history.history["val_loss"],
            "evaluate": net.evaluate(test, verbose=0),
            "predict": net.predict(np.linspace(-1, 1, 2 * 3 * 32 * 32, dtype="float32").reshape(2, 3, 32, 32),
                                   verbose=0).tolist(),
            "variable_devices": devices([v.value for v in net.variables + net.optimizer.variables]),
            "batch_devices": devices([x, y, *test[0]]), "partial_batch": int(x.shape[0])}


@contextlib.contextmanager
def one_rank_sync_batchnorm():
    """Synchronized BatchNorm (training/distributed.py) as under torchrun, with a world of one rank."""
    all_reduce = torch.distributed.all_reduce
    torch.distributed.all_reduce = lambda tensor, *args, **kwargs: None  # the sum over one rank
    batch_norm.TRAINING_HOOK = distributed._synced_batch_norm
    try:
        yield
    finally:
        batch_norm.TRAINING_HOOK = None
        torch.distributed.all_reduce = all_reduce


def sync_batchnorm() -> dict:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 32, 32)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 6)]
    losses = {}
    for name, context in (("local", contextlib.nullcontext), ("synced", one_rank_sync_batchnorm)):
        net = model(seed=3)
        with context():
            losses[name] = [float(net.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(2)]
        losses[f"{name}_devices"] = devices([v.value for v in net.variables])
    return losses


def mixed_bfloat16() -> dict:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        net = model()
        train = DeviceTrainData(split(8), AUG, batch_size=8, seed=0, epochs=1, data_format=DF, dtype="bfloat16")
        x, y = train[0]
        loss = float(net.train_on_batch(x, y, return_dict=True)["loss"])
        return {"loss": loss, "input_dtype": str(x.dtype), "variable_devices": devices([v.value for v in net.variables])}
    finally:
        keras.mixed_precision.set_global_policy("float32")


def ours(uploads) -> list[str]:
    return [f"{u.shape} {u.dtype} from {u.origin}" for u in uploads if u.ours]


def steady_state_uploads() -> dict:
    """Host-to-device copies our code makes in a second train step, evaluation step and input batch."""
    net = model()
    train = DeviceTrainData(split(24), AUG, batch_size=8, seed=0, epochs=1, data_format=DF)
    x, y = train[0]  # the epoch's plan is uploaded here, once
    net.train_on_batch(x, y)
    net.test_on_batch(x, y)
    result = {}
    for name, call in (("batch", lambda: train[1]), ("train_step", lambda: net.train_on_batch(x, y)),
                       ("eval_step", lambda: net.test_on_batch(x, y))):
        with record_uploads() as uploads:
            call()
        result[name] = ours(uploads)
        result[f"{name}_keras"] = len(uploads) - len(result[name])
    return result


def planted_cpu_labels() -> list[str]:
    """Control: the device pipeline's labels left on the CPU (a plain torch.as_tensor) must show up."""
    from keras_gdfr.data import device_pipeline

    to_device = device_pipeline._to_device
    device_pipeline._to_device = lambda array, device=None: (torch.as_tensor(array) if array.dtype == np.int32 and
                                                           len(array) == 24 else to_device(array, device))
    try:
        train = DeviceTrainData(split(24), AUG, batch_size=8, seed=0, epochs=1, data_format=DF)
        train[0]
        with record_uploads() as uploads:
            train[1]
        return ours(uploads)
    finally:
        device_pipeline._to_device = to_device


def planted_cpu_operand() -> str | None:
    """Control: a CPU tensor in a torch op beside the model's must raise, as on a GPU."""
    try:
        torch.cat([torch.ones(2, device=keras.src.backend.torch.core.get_device()), torch.ones(1)])
    except DeviceMismatch as error:
        return str(error)
    return None


def run(check) -> object:
    """The check's result, or {"error": its exception in one line} (each test then names its own failure)."""
    try:
        return check()
    except Exception as error:  # noqa: BLE001  (reported, not hidden: the test fails on it)
        return {"error": f"{type(error).__name__}: {error}"}


def main() -> None:
    register()  # before the CPU run's backward pass (device_standin.register)
    keras.config.set_image_data_format(DF)
    result = {"cpu": run(train_eval_predict)}
    with keras_on_standin():
        for name, check in (("standin", train_eval_predict), ("sync_batchnorm", sync_batchnorm),
                            ("mixed_bfloat16", mixed_bfloat16), ("uploads", steady_state_uploads),
                            ("planted_cpu_labels", planted_cpu_labels), ("planted_cpu_operand", planted_cpu_operand)):
            result[name] = run(check)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
