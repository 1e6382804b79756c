"""The paper's CIFAR-10 schedule, scaled to a wall-clock budget, on the torch backend without TensorFlow.

What `gdfr train recipes/cifar10.toml` does, on a GPU machine that has PyTorch
but no TensorFlow: data from a packed file (`gdfr pack`, read by the "packed"
source), the device-resident input pipeline (`keras_gdfr.data.gpu_pipeline`: pad 4 +
random crop + flip + normalisation on the GPU, the same batches tf.data would
give), GDFRNet, the paper's optimizer (`TorchSGD`: lr 0.1, momentum 0.9, weight
decay 5e-4 coupled as in PyTorch), label smoothing 0.1 and the step schedule
(x0.2 at 30 %, 60 %, 80 % of the epochs: 60/120/160 of 200), evaluated on the
whole test split after every epoch.

The number of epochs E is the longest whole schedule that fits `--budget-s`:
epochs 1 and 2 run at lr 0.1 (which every schedule of E >= 7 epochs starts with),
epoch 2 is timed (train + eval, steady state), then E = 2 + floor(time left /
epoch time) (capped by `--max-epochs`), the milestones are set for E, and training
continues from epoch 3. `--epochs N` fixes E instead. A hard deadline stops
training inside an epoch if the estimate was wrong; the report says so.

Writes one JSON line per event to `--out/train.jsonl` (flushed): start, plan,
epoch (loss, accuracy, val_loss, val_accuracy, lr, seconds, img/s), end.

    python bench/cifar_schedule.py --data bench/data/cifar10.tfrecord.gz --budget-s 300 --out $OUT
    python bench/cifar_schedule.py --smoke --data bench/data/cifar10.tfrecord.gz --out /tmp/smoke   # CPU, tiny
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MILESTONE_FRACTIONS = (0.3, 0.6, 0.8)  # 60, 120, 160 of the paper's 200 epochs


def scaled_milestones(epochs: int) -> list[int]:
    """The paper's milestones (60/120/160 of 200) scaled to `epochs`, ascending and >= 1."""
    out: list[int] = []
    for fraction in MILESTONE_FRACTIONS:
        m = max(1, round(fraction * epochs))
        if out and m <= out[-1]:
            m = out[-1] + 1
        if m < epochs:
            out.append(m)
    return out


class Events:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def emit(self, kind, **fields):
        line = json.dumps({"event": kind, "time": time.time(), **fields})
        self.file.write(line + "\n")
        self.file.flush()
        print(line, flush=True)


def best_config(bench_jsonl: str, variant: str) -> dict:
    """The fastest finished `gdfr bench` line of `variant` in a JSONL file (training settings only)."""
    best = None
    try:
        with open(bench_jsonl) as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if row.get("variant") != variant or row.get("input") != 32 or not row.get("finite"):
                    continue
                if best is None or row["train_img_s"] > best["train_img_s"]:
                    best = row
    except OSError:
        return {}
    if best is None:
        return {}
    return {k: best.get(k, False) for k in ("precision", "data_format", "memory_format", "jit", "foreach_sgd",
                                            "train_img_s")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10: packed .tfrecord.gz (or an ImageFolder zip/dir)")
    parser.add_argument("--variant", default="gdfrnet")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--eval-batch", type=int, default=500, help="divides 10,000: no partial eval batch")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--data-format", default="channels_first")
    parser.add_argument("--memory-format", default="contiguous")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--foreach-sgd", action="store_true", help="keras_gdfr.bench.use_foreach_updates")
    parser.add_argument("--auto-from", help="gdfr bench JSONL: take precision/layout/jit of the fastest run of --variant")
    parser.add_argument("--budget-s", type=float, default=300.0, help="wall-clock seconds for training, from start")
    parser.add_argument("--epochs", type=int, help="fix the number of epochs instead of fitting the budget")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-train", type=int)
    parser.add_argument("--limit-test", type=int)
    parser.add_argument("--smoke", action="store_true",
                        help="CPU check: tiny variant, 512/256 images, batch 64, at most 4 epochs")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    args = parser.parse_args()
    started = time.time()
    deadline = started + args.budget_s
    if args.smoke:
        args.variant, args.batch, args.eval_batch = "tiny", 64, 128
        args.limit_train, args.limit_test = args.limit_train or 512, args.limit_test or 256
        args.precision = "float32" if args.precision == "mixed_bfloat16" else args.precision
        args.max_epochs = min(args.max_epochs, 4)  # the budget planning path still runs
    os.makedirs(args.out, exist_ok=True)
    events = Events(os.path.join(args.out, "train.jsonl"))
    if args.auto_from:
        chosen = best_config(args.auto_from, args.variant)
        for key in ("precision", "data_format", "memory_format", "jit", "foreach_sgd"):
            if key in chosen:
                setattr(args, key, chosen[key])
        events.emit("auto_config", source=args.auto_from, chosen=chosen)

    import keras
    import numpy as np
    import torch

    from keras_gdfr.data.gpu_pipeline import DeviceEvalData, DeviceTrainData
    from keras_gdfr.data.sources import load_dataset
    from keras_gdfr.data.specs import DATASETS
    from keras_gdfr.models import GDFRNet
    from keras_gdfr.training.optimizer import MultiStepLR, TorchSGD, compile_for_training
    from keras_gdfr.training.schedule import MOMENTUM, PAPER_GAMMA, PAPER_LR, WEIGHT_DECAY

    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    spec = DATASETS["cifar10"]
    keras.utils.set_random_seed(args.seed)
    t0 = time.time()
    train = load_dataset("cifar10", "train", data_dir=args.data, limit=args.limit_train)
    test = load_dataset("cifar10", "test", data_dir=args.data, limit=args.limit_test)
    load_s = time.time() - t0

    keras.config.set_image_data_format(args.data_format)
    keras.mixed_precision.set_global_policy(args.precision)
    shape = (32, 32, 3) if args.data_format == "channels_last" else (3, 32, 32)
    model = GDFRNet(args.variant, input_shape=shape, num_classes=10, data_format=args.data_format)
    drop = bool(args.jit)  # one batch shape for a compiled step
    steps = len(train.labels) // args.batch if drop else math.ceil(len(train.labels) / args.batch)
    schedule = MultiStepLR(PAPER_LR, [], PAPER_GAMMA)  # epochs 1-2 at lr 0.1; milestones set once E is known
    optimizer = TorchSGD(schedule, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    if args.foreach_sgd:
        from keras_gdfr.bench import use_foreach_updates

        use_foreach_updates(optimizer)
    compile_for_training(model, optimizer, jit_compile=args.jit)
    common = dict(data_format=args.data_format, memory_format=args.memory_format)
    test_data = DeviceEvalData(test.images, test.labels, spec, batch_size=args.eval_batch, **common)
    events.emit("start", variant=args.variant, params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
                train=train.description, test=test.description, load_s=load_s, batch=args.batch,
                steps_per_epoch=steps, precision=args.precision, data_format=args.data_format,
                memory_format=args.memory_format, jit=args.jit, foreach_sgd=args.foreach_sgd, budget_s=args.budget_s,
                device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                torch=torch.__version__, keras=keras.__version__, backend=keras.backend.backend())

    class Deadline(keras.callbacks.Callback):
        async_safe = True  # reads no logs; keeps Keras's asynchronous batch dispatch (no per-step GPU sync)

        def __init__(self):
            super().__init__()
            self.hit = False

        def on_train_batch_end(self, batch, logs=None):
            if time.time() > deadline:
                self.hit = True
                self.model.stop_training = True

    deadline_cb = Deadline()
    history_rows = []

    def run_epochs(first: int, last: int):
        """fit epochs first..last-1 (0-based), one event per epoch."""
        data = DeviceTrainData(train.images, train.labels, spec, batch_size=args.batch, seed=args.seed,
                               start_epoch=first, epochs=last, drop_remainder=drop, **common)
        marks = {}

        class EpochClock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                marks[epoch] = time.time()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                seconds = time.time() - marks[epoch]
                row = dict(epoch=epoch + 1, seconds=seconds, train_img_s=steps * args.batch / seconds,
                           lr=float(schedule.lr_at_step(epoch * steps)), stopped_early=deadline_cb.hit,
                           **{k: float(v) for k, v in logs.items()})
                history_rows.append(row)
                events.emit("epoch", **row)

        model.fit(data, epochs=last, initial_epoch=first, steps_per_epoch=steps, validation_data=test_data,
                  shuffle=False, verbose=0, callbacks=[EpochClock(), deadline_cb])

    plan_epochs = args.epochs
    if plan_epochs is None:
        run_epochs(0, 1)
        run_epochs(1, 2)
        epoch_s = history_rows[-1]["seconds"]
        left = deadline - time.time()
        plan_epochs = max(2, min(args.max_epochs, 2 + int(left // epoch_s)))
        done = 2
    else:
        done = 0
    milestones = scaled_milestones(plan_epochs)
    new_schedule = MultiStepLR.from_epochs(0.1, milestones, 0.2, steps)
    optimizer._learning_rate = new_schedule  # eager torch: read every step
    schedule = new_schedule
    events.emit("plan", epochs=plan_epochs, milestones=milestones, epochs_done=done,
                estimated_epoch_s=history_rows[-1]["seconds"] if history_rows else None,
                elapsed_s=time.time() - started)
    if done < plan_epochs and not deadline_cb.hit:
        run_epochs(done, plan_epochs)
    final = history_rows[-1] if history_rows else {}
    events.emit(
        "end", epochs_planned=plan_epochs, epochs_run=len(history_rows), deadline_hit=deadline_cb.hit,
        test_accuracy=final.get("val_accuracy"), test_loss=final.get("val_loss"),
        best_test_accuracy=max((r.get("val_accuracy", 0.0) for r in history_rows), default=None),
        train_seconds=sum(r["seconds"] for r in history_rows), wall_s=time.time() - started,
        note=f"test accuracy after the last epoch, on {test.description}",
    )


if __name__ == "__main__":
    main()
