"""`gdfr bench --against native`: Keras vs the native PyTorch twin (bench/native_gdfrnet.py),
same weights and batches, train steps interleaved in one process."""

from __future__ import annotations

import time

import click


# Interleaved rounds run untimed after the first (warm-up) step: on this CPU both sides' steps
# still shrink over their first ~10 rounds (medians of 5 rounds of 2 steps, batch 64, 2026-12-06:
# Keras 199 -> 188-192 ms, native 188 -> 171-176 ms), so the first rounds misstate the steady state.
WARMUP_ROUNDS = 5


def native_module():
    """bench/native_gdfrnet.py of this checkout (the twin is a benchmark tool, not part of the package)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "native_gdfrnet.py"
    if not path.is_file():
        raise click.UsageError(f"--against native needs {path} (run from a clone of the repository)")
    spec = importlib.util.spec_from_file_location("native_gdfrnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def against_native(variant: str = "tiny", image_size: int = 32, batch: int = 64, rounds: int = 6, steps: int = 2,
                   jit: bool = False, threads: int = 0, seed: int = 0, foreach_sgd: bool = True,
                   keras_call: str = "fit", **overrides) -> dict:
    """Keras vs the native PyTorch twin, same weights and batches, train steps interleaved in one process.

    Each round runs `steps` Keras train steps (TorchSGD, label-smoothed cross-entropy and the
    accuracy metric, as `gdfr train` compiles them) then `steps` native ones (torch.optim.SGD,
    the same loss); the figure is each side's median step over the rounds, after one warm-up
    step (compilation included with `jit`) and `WARMUP_ROUNDS` untimed rounds. channels_first,
    float32, torch only.

    A Keras step is the call `fit` makes for each batch, `model.train_function([batch])`
    (`gdfr train` trains with `fit`). `keras_call="train_on_batch"` times `train_on_batch`
    instead, which also rebuilds the model's torch parameter list and resets the metrics on
    every call (~1.4 ms a step here; the figure before 2026-12-06 12:00 UTC).
    """
    import keras
    import numpy as np

    from keras_gdfr.data.tf_runtime import tame_if_installed
    from keras_gdfr.models import GDFRNet
    from keras_gdfr.training.optimizer import TorchSGD, compile_for_training
    from keras_gdfr.training.schedule import PAPER_LR

    if keras_call not in ("fit", "train_on_batch"):
        raise ValueError(f"keras_call must be 'fit' or 'train_on_batch'. Received: keras_call={keras_call!r}")
    if keras.backend.backend() != "torch":
        raise click.UsageError("--against native compares with PyTorch: run with KERAS_BACKEND=torch")
    import torch

    if threads:
        torch.set_num_threads(threads)
    tame_if_installed()
    native = native_module()
    keras.config.set_image_data_format("channels_first")
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)
    model = GDFRNet(variant, input_shape=(3, image_size, image_size), num_classes=10, data_format="channels_first",
                    **overrides)
    optimizer = TorchSGD(PAPER_LR)
    optimizer.foreach = foreach_sgd  # torch: TorchSGD's multi-tensor update (the compiled step traces update_step)
    compile_for_training(model, optimizer, jit_compile=jit)
    twin = native.build(variant, 10, **overrides)
    native.load_keras_weights(twin, model)
    device = keras.ops.convert_to_tensor(np.zeros(1, np.float32)).device
    twin = twin.to(device).train()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, image_size, image_size), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    kx, ky = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(np.eye(10, dtype=np.float32)[labels])
    tx, ty = torch.as_tensor(x, device=device), torch.as_tensor(labels, device=device)
    step = native.train_step_fn(torch.compile(twin) if jit else twin)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        started = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        return (time.perf_counter() - started) / steps

    keras_times, native_times = [], []
    warm = time.perf_counter()
    model.train_on_batch(kx, ky)  # builds the optimizer and metrics, sets model.train_function
    sync()
    keras_warmup_s = time.perf_counter() - warm
    if keras_call == "fit":
        keras_step = lambda: model.train_function([(kx, ky)])  # noqa: E731
    else:
        keras_step = lambda: model.train_on_batch(kx, ky)  # noqa: E731
    warm = time.perf_counter()
    step(tx, ty)
    sync()
    native_warmup_s = time.perf_counter() - warm
    for _ in range(WARMUP_ROUNDS):  # untimed: both sides still speed up over their first steps (allocator, caches)
        timed(keras_step)
        timed(lambda: step(tx, ty))
    for _ in range(rounds):
        keras_times.append(timed(keras_step))
        native_times.append(timed(lambda: step(tx, ty)))
    keras_s, native_s = float(np.median(keras_times)), float(np.median(native_times))
    return {
        "against": "native", "against_variant": variant, "against_batch": batch, "against_rounds": rounds,
        "against_steps": steps, "against_jit": jit, "against_foreach_sgd": foreach_sgd and not jit,
        "against_keras_call": keras_call,
        "keras_step_s": keras_s, "native_step_s": native_s,
        "keras_img_s": batch / keras_s, "native_img_s": batch / native_s,
        "keras_native_ratio": native_s / keras_s,
        "keras_warmup_s": keras_warmup_s, "native_warmup_s": native_warmup_s,
    }
