"""The native-PyTorch control (issue 18): the twin of a variant trained by a plain PyTorch loop.

A check on the Keras trainer, not a second trainer. It trains `bench/native_gdfrnet.py`'s
twin with the recipe's schedule on the batches the Keras trainer sees, and writes a run
directory that `gdfr report` reads. docs/results.md ("The native control") says what it
shares with `gdfr train` and what it does not:

- shared (the data and the bookkeeping): the recipe (`load_recipe`), the splits
  (`run.load_splits`), the batches (`DeviceTrainData`/`DeviceEvalData`: for a seed, the same
  order, crops and flips per epoch as `gdfr train`), the initial weights (a Keras model built
  as `gdfr train` builds it after `keras.utils.set_random_seed(seed)`, copied into the twin
  by variable path), the events writer and the eval.json builder;
- plain PyTorch (the model path): the network (`NativeGDFRNet`, nn.BatchNorm2d with
  momentum 0.1 = Keras's 0.9), the loss (`nn.CrossEntropyLoss(label_smoothing=...)`), the
  optimizer (`torch.optim.SGD`, coupled weight decay on every parameter, nesterov off), the
  schedule (`torch.optim.lr_scheduler.MultiStepLR`, stepped per epoch), the loop, the
  metrics, the checkpoints (`torch.save`).

    KERAS_BACKEND=torch python bench/native_train.py cifar10 --variant tiny --epochs 15 \\
        --data ../shared/data/cifar10-jpeg.zip --set train.seed=0 --run-dir runs/cifar10-native-tiny-s0
    KERAS_BACKEND=torch python bench/native_train.py --resume runs/cifar10-native-tiny-s0

The run directory: recipe.json, events.jsonl (run_start with `"trainer": "native-torch"`,
progress, epoch_end, checkpoint, run_end; docs/run-directory.md), checkpoints/last.pt
(model, optimizer and scheduler state, replaced atomically after every epoch) and
eval.json (the final weights on the whole test split).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import signal
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # native_gdfrnet beside this file

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from native_gdfrnet import build, load_keras_weights  # noqa: E402

TRAINER = "native-torch"  # run_start's `trainer` field; `gdfr train` writes none
CHECKPOINT = pathlib.Path("checkpoints") / "last.pt"
PROGRESS_INTERVAL_S = 1.0


class ControlError(Exception):
    """A run that cannot start or continue; the message names the offending input."""


# ---------------------------------------------------------------------------
# What comes from the project: recipe, data, initial weights, bookkeeping.


def load(args) -> "Recipe":  # noqa: F821
    from keras_gdfr.training.recipe import load_recipe

    data = os.path.abspath(os.path.expanduser(args.data)) if args.data else None
    return load_recipe(args.recipe, variant=args.variant, sets=args.set or (), epochs=args.epochs, data=data,
                       limit_train=args.limit_train, limit_test=args.limit_test)


def check_supported(recipe) -> None:
    """The control covers the recipes of issue 18: one device, float32, every weight decaying."""
    t = recipe.train
    if keras.backend.backend() != "torch":
        raise ControlError(f"KERAS_BACKEND={keras.backend.backend()}: the control needs the torch backend")
    if t.precision != "float32":
        raise ControlError(f"train.precision = {t.precision!r}: the control trains in float32 only")
    if t.decay_exclude:
        raise ControlError(f"train.decay_exclude = {list(t.decay_exclude)}: the control decays every weight")


def initial_twin(recipe, num_classes: int):
    """The twin with the weights `gdfr train` starts from for this recipe and seed, and the Keras count."""
    from keras_gdfr.counting import count_model
    from keras_gdfr.training import run

    keras_model = run.build_model(recipe, num_classes)  # after set_random_seed: the trainer's draws
    twin = build(recipe.model.variant, num_classes, **recipe.model_overrides())
    load_keras_weights(twin, keras_model)
    return twin, count_model(keras_model)


def load_data(recipe):
    """(train, test) splits, seeded as `gdfr train` seeds them: the seed is set before the data and the model."""
    from keras_gdfr.data.tf_runtime import tame_if_installed
    from keras_gdfr.training import run

    tame_if_installed()
    keras.utils.set_random_seed(recipe.train.seed)
    return run.load_splits(recipe)


def train_batches(recipe, train_split, start_epoch: int):
    """`gdfr train`'s training batches (same order and draws per (seed, epoch)), NCHW, integer labels."""
    from keras_gdfr.data.device_pipeline import DeviceTrainData
    from keras_gdfr.training.run import augmentation

    t = recipe.train
    return DeviceTrainData(train_split, augmentation(recipe), batch_size=t.batch_size, seed=t.seed,
                           epochs=t.epochs, start_epoch=start_epoch, one_hot=False, data_format="channels_first")


def eval_batches(recipe, split):
    from keras_gdfr.data.device_pipeline import DeviceEvalData
    from keras_gdfr.training.run import augmentation

    return DeviceEvalData(split, augmentation(recipe), batch_size=recipe.train.batch_size, one_hot=False,
                          data_format="channels_first")


# ---------------------------------------------------------------------------
# Plain PyTorch: optimizer, schedule, loss, one epoch, evaluation.


def optimizer_and_schedule(twin: nn.Module, train):
    optimizer = torch.optim.SGD(twin.parameters(), lr=train.lr, momentum=train.momentum,
                                weight_decay=train.weight_decay, nesterov=False)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(train.milestones), gamma=train.lr_gamma)
    return optimizer, schedule


def train_step(twin, optimizer, criterion, x, y):
    """One SGD step; (loss, correct) of the batch before the update, as Python numbers."""
    optimizer.zero_grad(set_to_none=True)
    logits = twin(x)
    loss = criterion(logits, y)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), int((logits.argmax(dim=1) == y).sum())


class Stopped(Exception):
    """An epoch that did not finish: a non-finite loss."""


def train_epoch(twin, optimizer, criterion, batches, epoch: int, on_progress=None) -> tuple[float, float]:
    """One epoch (0-based) of `batches`; (mean loss, accuracy) over its images, as Keras's metrics average."""
    twin.train()
    loss_sum, correct, seen = 0.0, 0, 0
    steps = batches.steps_per_epoch
    for step in range(steps):
        x, y = batches.batch(epoch, step)
        y = y.long()
        loss, right = train_step(twin, optimizer, criterion, x, y)
        if not math.isfinite(loss):
            raise Stopped(f"loss became {loss} at epoch {epoch + 1}, step {step + 1}; the last good checkpoint is kept")
        n = int(y.shape[0])
        loss_sum, correct, seen = loss_sum + loss * n, correct + right, seen + n
        if on_progress:
            on_progress(step + 1, steps, loss_sum / seen, correct / seen)
    return loss_sum / seen, correct / seen


def predict_logits(twin, batches) -> np.ndarray:
    """Logits (N, K) of every image of an evaluation split, in order, float64, inference mode."""
    twin.eval()
    with torch.no_grad():
        return np.concatenate([twin(batches[i][0]).double().numpy() for i in range(len(batches))])


def evaluate(twin, batches, labels, label_smoothing: float) -> tuple[float, float, np.ndarray]:
    """(loss, accuracy, log-probabilities) on an evaluation split, the loss label-smoothed as in training."""
    from keras_gdfr.training.run import log_softmax, smoothed_cross_entropy

    log_probs = log_softmax(predict_logits(twin, batches))
    labels = np.asarray(labels)
    return (smoothed_cross_entropy(log_probs, labels, label_smoothing),
            float((log_probs.argmax(axis=1) == labels).mean()), log_probs)


# ---------------------------------------------------------------------------
# The run directory.


def save_checkpoint(run_dir: pathlib.Path, twin, optimizer, schedule, epoch: int) -> pathlib.Path:
    from keras_gdfr.training.checkpoints import atomic_write_file

    path = run_dir / CHECKPOINT
    path.parent.mkdir(exist_ok=True)
    state = {"epoch": epoch, "model": twin.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict()}
    return atomic_write_file(path, lambda tmp: torch.save(state, tmp))


def restore(run_dir: pathlib.Path, twin, optimizer, schedule) -> int:
    """Load the last checkpoint into the twin, optimizer and schedule; the epochs it completed (0: none)."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        if any(e.get("event") == "epoch_end" for e in _events(run_dir)):
            raise ControlError(f"{path}: missing, but events.jsonl records completed epochs; refusing to start over")
        return 0
    state = torch.load(path, weights_only=True)
    twin.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return int(state["epoch"])


def _events(run_dir: pathlib.Path) -> list[dict]:
    from keras_gdfr.training.events import read_events

    return list(read_events(run_dir)) if (run_dir / "events.jsonl").exists() else []


def check_new_run_dir(run_dir: pathlib.Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ControlError(f"{run_dir}: exists and is not an empty directory; pass --resume {run_dir} to continue it")


def recipe_of(run_dir: pathlib.Path):
    from keras_gdfr.training.recipe import Recipe

    path = run_dir / "recipe.json"
    if not path.is_file():
        raise ControlError(f"{path}: not found; --resume takes a run directory this script started")
    return Recipe.from_dict(json.loads(path.read_text()), origin=str(path))


class Progress:
    """`progress` events at most once a second (and at each epoch's first and last step)."""

    def __init__(self, events, epoch: int):
        self.events, self.epoch, self.last = events, epoch, 0.0

    def __call__(self, step, steps, loss, accuracy):
        now = time.time()
        if step in (1, steps) or now - self.last >= PROGRESS_INTERVAL_S:
            self.last = now
            self.events.emit("progress", epoch=self.epoch + 1, step=step, steps=steps, loss=loss, accuracy=accuracy)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run(recipe, run_dir: pathlib.Path, *, resume: bool) -> dict | None:
    """Train (or continue) the control into `run_dir`; the test metrics when it completes, else None."""
    from keras_gdfr.evaluation import evaluation_report
    from keras_gdfr.training.events import EventWriter

    check_supported(recipe)
    if not resume:
        check_new_run_dir(run_dir)
    t = recipe.train
    train_split, test_split = load_data(recipe)
    twin, count = initial_twin(recipe, train_split.num_classes)
    if not resume:  # the data loaded and the model built: now the run directory
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2))
    optimizer, schedule = optimizer_and_schedule(twin, t)
    done = restore(run_dir, twin, optimizer, schedule) if resume else 0
    criterion = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    batches = train_batches(recipe, train_split, done)
    test_batches = eval_batches(recipe, test_split)
    started = time.perf_counter()
    with EventWriter(run_dir) as events:
        events.emit(
            "run_start", run_id=run_dir.name, recipe=recipe.to_dict(), variant=recipe.model.variant,
            dataset=recipe.data.dataset, backend="torch", trainer=TRAINER, params=count.params, macs=count.macs,
            epochs=t.epochs, initial_epoch=done, steps_per_epoch=batches.steps_per_epoch, batch_size=t.batch_size,
            train_size=len(train_split), test_size=len(test_split), class_names=train_split.class_names,
            data=train_split.description, pid=os.getpid(), pipeline="device", torch_threads=torch.get_num_threads(),
        )
        best = max((e["val_accuracy"] for e in _events(run_dir) if e.get("event") == "epoch_end"), default=None)
        seconds = lambda: time.perf_counter() - started  # noqa: E731
        try:
            for epoch in range(done, t.epochs):
                epoch_start = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"]
                loss, accuracy = train_epoch(twin, optimizer, criterion, batches, epoch, Progress(events, epoch))
                schedule.step()
                val_loss, val_accuracy, _ = evaluate(twin, test_batches, test_split.labels, t.label_smoothing)
                events.emit("epoch_end", epoch=epoch + 1, epochs=t.epochs, loss=loss, accuracy=accuracy,
                            val_loss=val_loss, val_accuracy=val_accuracy, lr=lr,
                            seconds=time.perf_counter() - epoch_start)
                best = val_accuracy if best is None else max(best, val_accuracy)
                path = save_checkpoint(run_dir, twin, optimizer, schedule, epoch + 1)
                events.emit("checkpoint", epoch=epoch + 1, path=str(path.relative_to(run_dir)), best=False)
                done = epoch + 1
        except Stopped as stop:
            events.emit("error", message=str(stop), kind="nan_loss")
            events.emit("run_end", status="failed", epoch=done, seconds=seconds(), best_val_accuracy=best, test=None)
            raise ControlError(str(stop)) from None
        except KeyboardInterrupt:
            events.emit("run_end", status="interrupted", epoch=done, seconds=seconds(), best_val_accuracy=best,
                        test=None)
            return None
        loss, _, log_probs = evaluate(twin, test_batches, test_split.labels, t.label_smoothing)
        report = evaluation_report(test_split.labels, np.exp(log_probs), test_split.class_names, loss=loss,
                                   source=test_split.description, checkpoint=str(CHECKPOINT),
                                   dataset=recipe.data.dataset)
        (run_dir / "eval.json").write_text(json.dumps(report, indent=2))
        test = {"accuracy": report["accuracy"], "loss": report["loss"]}
        events.emit("run_end", status="completed", epoch=done, seconds=seconds(), best_val_accuracy=best, test=test)
        return test


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", help="a recipe name or .toml file, as `gdfr train` takes it")
    parser.add_argument("--variant")
    parser.add_argument("--epochs", type=int, help="epochs; the milestones scale as in `gdfr train`")
    parser.add_argument("--data", help="the offline data (ImageFolder dir or .zip), as `gdfr train --data`")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="a recipe key, as `gdfr train --set`")
    parser.add_argument("--limit-train", type=int)
    parser.add_argument("--limit-test", type=int)
    parser.add_argument("--run-dir", help="the run directory to create")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    args = parser.parse_args(argv)
    if bool(args.resume) == bool(args.recipe and args.run_dir):
        parser.error("give RECIPE and --run-dir for a new run, or --resume RUN_DIR alone")
    return args


def main(argv=None) -> int:
    from keras_gdfr.data.errors import DataError
    from keras_gdfr.training.recipe import RecipeError

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # ends like Ctrl-C: run_end "interrupted", checkpoint kept
    try:
        if args.resume:
            run_dir = pathlib.Path(args.resume)
            test = run(recipe_of(run_dir), run_dir, resume=True)
        else:
            run_dir = pathlib.Path(args.run_dir)
            test = run(load(args), run_dir, resume=False)
    except (ControlError, RecipeError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if test is None:
        print(f"interrupted; continue with: python bench/native_train.py --resume {run_dir}", file=sys.stderr)
        return 130
    print(f"{run_dir}: test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
