"""Interleaved CPU A/B of train-step variants in ONE process (the machine is shared and noisy).

    KERAS_BACKEND=torch python bench/cpu_ab.py [--variant tiny] [--batch 128] [--rounds 5] [--steps 3]

Each round runs `--steps` train steps of every configuration in turn (a warm-up
step first, once), so load changes hit all of them alike; the report gives each
configuration's median step over all rounds and the load average before/after.
Configurations `FORMAT-IMPL`: FORMAT `cl` (channels_last) or `cf` (channels_first);
IMPL `now` (this tree), `refbn` (this tree with Keras's own BatchNorm code,
`keras_gdfr.layers.batch_norm.FUSED_TORCH = False`) or `before` (a snapshot of the
layers before the performance work, imported from `--before-path` as the package
`keras_gdfr_before`; make it with bench/make_before_snapshot.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_gdfr.layers import batch_norm as B  # noqa: E402
from keras_gdfr.models import GDFRNet  # noqa: E402
from keras_gdfr.training.optimizer import TorchSGD  # noqa: E402


def build(variant, data_format, batch, size, seed=0, impl="now"):
    keras.utils.set_random_seed(seed)
    shape = (size, size, 3) if data_format == "channels_last" else (3, size, size)
    builder = GDFRNet
    if impl == "before":
        from keras_gdfr_before.models import GDFRNet as builder
    model = builder(variant, input_shape=shape, num_classes=10, data_format=data_format)
    model.compile(
        optimizer=TorchSGD(0.1),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    rng = np.random.default_rng(seed)
    x = keras.ops.convert_to_tensor(rng.standard_normal((batch, *shape), dtype=np.float32))
    y = keras.ops.convert_to_tensor(np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)])
    model.make_train_function()
    return model, (x, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--configs", default="cl-before,cl-now,cf-before,cf-now")
    parser.add_argument("--before-path", default="/tmp/gdfr-before")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default). Under load above the core count, "
                        "1 thread gives far steadier timings than 2 (OpenMP barriers stall when a thread is descheduled).")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    formats = {"cl": "channels_last", "cf": "channels_first"}
    configs = {}
    for name in args.configs.split(","):
        fmt, impl = name.split("-")
        configs[name] = (formats[fmt], impl)
    if any(impl == "before" for _, impl in configs.values()):
        import sys

        sys.path.insert(0, args.before_path)
    models = {name: build(args.variant, fmt, args.batch, args.size, impl=impl) for name, (fmt, impl) in configs.items()}
    times = {name: [] for name in configs}
    load_before = os.getloadavg()

    def step(name):
        B.FUSED_TORCH = configs[name][1] != "refbn"
        model, data = models[name]
        start = time.perf_counter()
        model.train_function([data])
        return time.perf_counter() - start

    for name in configs:  # warm-up
        step(name)
    for _ in range(args.rounds):
        for name in configs:
            for _ in range(args.steps):
                times[name].append(step(name))
    load_after = os.getloadavg()
    B.FUSED_TORCH = True
    result = {
        "variant": args.variant, "batch": args.batch, "size": args.size, "backend": keras.backend.backend(),
        "threads": __import__("torch").get_num_threads(), "load_before": load_before, "load_after": load_after,
        "median_step_s": {n: statistics.median(t) for n, t in times.items()},
        "img_per_s": {n: args.batch / statistics.median(t) for n, t in times.items()},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
