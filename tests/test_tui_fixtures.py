"""Fixture run directories, recipes and a fake `gdfr` for the launcher's tests.

Everything is written exactly per docs/run-directory.md. The fake `gdfr` (a
small script) implements `train` and `info` with the real flags, writes real
events, honours SIGINT like the trainer (checkpoint, `run_end` "interrupted"),
and fails on request through environment variables:

    FAKE_STEP_S         seconds per step (default 0.02)
    FAKE_FAIL_AT_EPOCH  write a nan_loss error and run_end "failed" in that epoch
    FAKE_EXIT_MESSAGE   print this to stderr and exit 2 before writing anything
    FAKE_EXIT_DELAY_S   linger this long after `run_end` before exiting (as a real
                        trainer does while it tears down)
    FAKE_NO_LOCK        do not write/hold RUN_DIR/run.lock (a trainer from before the lock)

Like the real trainer it holds an flock on RUN_DIR/run.lock with
{"pid", "host", "started", "backend"} for the whole run.

`python -m tests.test_tui_fixtures DIR` writes a demo folder (DIR/recipes,
DIR/runs, DIR/fake_gdfr.py) for trying the launcher by hand.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys


from launcher.run_index import RunIndex

T0 = 1764314100.0
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

RECIPES = {
    "cifar10": '''# CIFAR-10: GDFRNet as published, trained with the paper's settings.
[data]
dataset = "cifar10"

[model]
variant = "gdfrnet"

[train]
epochs = 200
batch_size = 128
lr = 0.1
milestones = [60, 120, 160]
lr_gamma = 0.2
''',
    "svhn": '''# SVHN: no flips (digits change meaning).
[data]
dataset = "svhn"

[model]
variant = "gdfrnet"

[train]
epochs = 200
lr = 0.1
milestones = [60, 120, 160]
lr_gamma = 0.2
''',
    "imagenette": '''# Imagenette at 256 px, batch 64.
[data]
dataset = "imagenette"

[train]
epochs = 200
batch_size = 64
lr = 0.1
milestones = [60, 120, 160]
lr_gamma = 0.2
''',
}


def write_recipes(folder: pathlib.Path) -> pathlib.Path:
    """Three small recipe TOML files; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in RECIPES.items():
        (folder / f"{name}.toml").write_text(text)
    return folder


def fake_info(params: int = 812345, macs: int = 45678901, calls: list | None = None):
    """A `model_info` function for `make_app` that answers at once, like `gdfr info --json`.

    Each `--set` item adds 100 000 parameters (so a test sees the size follow them);
    `calls` collects the (recipe, variant, *sets) asked for.
    """

    async def info(recipe: str, variant: str, *sets: str) -> dict:
        if calls is not None:
            calls.append((pathlib.Path(recipe).stem, variant, *sets))
        return {"variant": variant, "params": params + 100000 * len(sets), "macs": macs,
                "recipe": pathlib.Path(recipe).stem}

    return info


def epoch_events(
    epochs: int,
    done: int,
    *,
    start: float = T0,
    steps: int = 16,
    seconds: float = 30.0,
    acc0: float = 0.25,
    gain: float = 0.08,
    lr: float = 0.1,
    first: int = 1,
) -> list[dict]:
    """progress + epoch_end + checkpoint events of `done` epochs, from epoch `first`."""
    events = []
    for epoch in range(first, first + done):
        t = start + (epoch - first) * seconds
        k = epoch - 1
        for step in (steps // 2, steps):
            events.append(dict(event="progress", time=t + seconds * step / steps - 1, epoch=epoch,
                               step=step, steps=steps, loss=round(2.2 - 0.2 * k, 3),
                               accuracy=round(acc0 + gain * k, 3)))
        events.append(dict(
            event="epoch_end", time=t + seconds, epoch=epoch, epochs=epochs,
            loss=round(2.05 - 0.2 * k, 3), accuracy=round(acc0 + gain * k, 3),
            val_loss=round(1.93 - 0.15 * k, 3), val_accuracy=round(acc0 + 0.06 + gain * k, 3),
            lr=lr, seconds=seconds,
        ))
        events.append(dict(event="checkpoint", time=t + seconds + 0.5, epoch=epoch,
                           path="checkpoints/last", best=True))
    return events


def run_start(run_id: str, variant: str, dataset: str, epochs: int, *, pid: int = 4242,
              time: float = T0, initial_epoch: int = 0, backend: str = "torch") -> dict:
    """A `run_start` event."""
    return dict(event="run_start", time=time, run_id=run_id, variant=variant, dataset=dataset,
                backend=backend, params=812345 if variant == "tiny" else 43_123_456,
                macs=45678901 if variant == "tiny" else 1_512_345_678, epochs=epochs,
                initial_epoch=initial_epoch, steps_per_epoch=16, batch_size=128,
                train_size=2000, test_size=500, pid=pid, recipe={"data": {"dataset": dataset}})


def eval_json(classes: list[str] = CIFAR_CLASSES, accuracy: float = 0.41) -> dict:
    """An `eval.json` object with a deterministic confusion matrix."""
    n = len(classes)
    matrix = [[(20 if i == j else (i * 7 + j * 3) % 5) for j in range(n)] for i in range(n)]
    per_class = [row[i] / sum(row) for i, row in enumerate(matrix)]
    return {
        "accuracy": accuracy, "loss": 1.7, "num_examples": sum(map(sum, matrix)),
        "class_names": classes, "per_class_accuracy": per_class, "confusion_matrix": matrix,
        "roc": {}, "macro_auc": 0.88, "source": "test split", "checkpoint": "model.keras",
    }


def write_run(folder: pathlib.Path, name: str, events: list[dict], *, evaluation: dict | None = None,
              output: str = "", partial_line: str = "") -> pathlib.Path:
    """A run directory: recipe.json, events.jsonl (+ an unfinished last line), eval.json, output.log."""
    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "recipe.json").write_text(json.dumps({"data": {"dataset": "cifar10"}, "train": {"epochs": 3}}))
    with open(path / "events.jsonl", "w") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")
        handle.write(partial_line)
    if evaluation is not None:
        (path / "eval.json").write_text(json.dumps(evaluation))
    if output:
        (path / "output.log").write_text(output)
    return path


def write_fixture_runs(folder: pathlib.Path, *, running_pid: int | None = None, broken: bool = False) -> dict[str, pathlib.Path]:
    """Five runs (completed x2, interrupted, failed, running) and optionally two broken dirs.

    Args:
        running_pid: the pid of the "running" run (a live process, e.g. the
            test's own); None leaves that run out.
        broken: also write a half-written directory and one with unreadable events.
    """
    folder.mkdir(parents=True, exist_ok=True)
    runs = {}
    name = "cifar10-tiny-20261128-071500"
    events = [run_start(name, "tiny", "cifar10", 3), *epoch_events(3, 3)]
    events.append(dict(event="run_end", time=T0 + 95, status="completed", epoch=3, seconds=95.0,
                       best_val_accuracy=0.47, test={"accuracy": 0.47, "loss": 1.62}))
    runs["completed"] = write_run(folder, name, events, evaluation=eval_json(accuracy=0.47),
                                  output="Epoch 3/3\n16/16 - 30s - loss: 1.65 - accuracy: 0.41\nTest accuracy: 0.47\n")
    name = "cifar10-net5-20261128-080000"
    events = [run_start(name, "net5", "cifar10", 5, time=T0 + 3600),
              *epoch_events(5, 5, start=T0 + 3600, seconds=60.0, acc0=0.3, gain=0.1)]
    events.append(dict(event="run_end", time=T0 + 3905, status="completed", epoch=5, seconds=305.0,
                       best_val_accuracy=0.76, test={"accuracy": 0.76, "loss": 0.9}))
    runs["completed2"] = write_run(folder, name, events, evaluation=eval_json(accuracy=0.76))
    name = "cifar10-net1-20261128-090000"
    events = [run_start(name, "net1", "cifar10", 5, time=T0 + 7200),
              *epoch_events(5, 2, start=T0 + 7200, seconds=40.0, acc0=0.2, gain=0.05)]
    events.append(dict(event="run_end", time=T0 + 7290, status="interrupted", epoch=2, seconds=90.0,
                       best_val_accuracy=0.31, test=None))
    runs["interrupted"] = write_run(folder, name, events, output="Epoch 3/5\n^C interrupted: checkpoint saved\n")
    name = "svhn-tiny-20261128-100000"
    events = [run_start(name, "tiny", "svhn", 4, time=T0 + 10800),
              *epoch_events(4, 1, start=T0 + 10800, seconds=20.0),
              dict(event="error", time=T0 + 10835, kind="nan_loss",
                   message="loss became NaN at epoch 2, step 7; lower train.lr"),
              dict(event="run_end", time=T0 + 10836, status="failed", epoch=1, seconds=36.0,
                   best_val_accuracy=0.31, test=None)]
    runs["failed"] = write_run(folder, name, events, output="Epoch 2/4\nNaN loss detected\n")
    if running_pid is not None:
        name = "cifar100-gdfrnet-20261128-110000"
        events = [run_start(name, "gdfrnet", "cifar100", 4, time=T0 + 14400, pid=running_pid),
                  *epoch_events(4, 2, start=T0 + 14400, seconds=50.0, acc0=0.1, gain=0.07),
                  dict(event="progress", time=T0 + 14512.5, epoch=3, step=4, steps=16, loss=1.85, accuracy=0.25),
                  dict(event="progress", time=T0 + 14525, epoch=3, step=8, steps=16, loss=1.8, accuracy=0.27)]
        runs["running"] = write_run(folder, name, events, partial_line='{"event": "progress", "ti',
                                    output="Epoch 3/4\n 8/16 [=====>......] - ETA: 25s - loss: 1.80\n")
    if broken:
        half = folder / "cifar10-r8-20261128-120000"
        half.mkdir(exist_ok=True)
        (half / "recipe.json").write_text("{}")
        runs["half_written"] = half
        garbage = folder / "cifar10-r4-20261128-130000"
        garbage.mkdir(exist_ok=True)
        (garbage / "recipe.json").write_text("{}")
        (garbage / "events.jsonl").write_text("not json\nstill not json\n")
        runs["garbage"] = garbage
        (folder / "notes").mkdir(exist_ok=True)  # not a run: ignored silently
    return runs


FAKE_GDFR = r'''"""A fake `gdfr` for the launcher's tests: `train` and `info`, events per the contract."""
import argparse, fcntl, json, os, pathlib, signal, socket, sys, time

def emit(handle, **event):
    event["time"] = time.time()
    handle.write(json.dumps(event) + "\n")
    handle.flush()

def info(args):
    print(json.dumps({"dataset": "cifar10", "image_size": 32, "num_classes": 10, "epochs": 200,
                      "batch_size": 128, "lr": 0.1, "milestones": [60, 120, 160],
                      "variant": args.variant, "params": 812345, "macs": 45678901}))

def train(args):
    message = os.environ.get("FAKE_EXIT_MESSAGE")
    if message:
        print(message, file=sys.stderr)
        sys.exit(2)
    if args.epochs is not None and args.epochs < 1:
        print(f"Error: {args.recipe}: train.epochs: expected an integer >= 1, got {args.epochs} (integer)"
              f" (from --epochs {args.epochs})", file=sys.stderr)
        sys.exit(2)
    run_dir = pathlib.Path(args.resume or args.run_dir)
    if not args.resume and run_dir.exists() and any(run_dir.iterdir()):
        print(f"error: {run_dir}: run directory already exists and is not empty; "
              f"pass --resume {run_dir} to continue it", file=sys.stderr)
        sys.exit(1)
    run_dir.mkdir(parents=True, exist_ok=True)
    initial = 0
    epochs = args.epochs or 3
    variant = args.variant or "gdfrnet"
    if args.resume:
        state = json.loads((run_dir / "checkpoints" / "last" / "state.json").read_text())
        initial = state["epoch"]
        recipe = json.loads((run_dir / "recipe.json").read_text())
        epochs, variant = recipe["train"]["epochs"], recipe["model"]["variant"]
    else:
        (run_dir / "recipe.json").write_text(json.dumps(
            {"data": {"dataset": "cifar10", "data_dir": args.data or ""},
             "model": {"variant": variant}, "train": {"epochs": epochs}}))
    if not os.environ.get("FAKE_NO_LOCK"):
        lock = open(run_dir / "run.lock", "a+")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.truncate(0)
        lock.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                               "backend": os.environ.get("KERAS_BACKEND", "")}))
        lock.flush()
    linger = float(os.environ.get("FAKE_EXIT_DELAY_S", "0"))
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append("int"))
    signal.signal(signal.SIGTERM, lambda *_: stop.append("term"))
    step_s = float(os.environ.get("FAKE_STEP_S", "0.02"))
    fail_at = int(os.environ.get("FAKE_FAIL_AT_EPOCH", "0"))
    steps = 4
    start = time.time()
    best = 0.0
    with open(run_dir / "events.jsonl", "a") as handle:
        emit(handle, event="run_start", run_id=run_dir.name, variant=variant, dataset="cifar10",
             backend=os.environ.get("KERAS_BACKEND", ""), params=812345, macs=45678901,
             epochs=epochs, initial_epoch=initial, steps_per_epoch=steps, batch_size=args.batch_size or 8,
             train_size=args.limit_train or 40, test_size=args.limit_test or 40, pid=os.getpid(),
             recipe={"data": {"dataset": "cifar10"}})
        for epoch in range(initial + 1, epochs + 1):
            t0 = time.time()
            for step in range(1, steps + 1):
                time.sleep(step_s)
                if epoch == fail_at and step == 3:
                    emit(handle, event="error", kind="nan_loss",
                         message=f"loss became NaN at epoch {epoch}, step {step}")
                    emit(handle, event="run_end", status="failed", epoch=epoch - 1,
                         seconds=time.time() - start, best_val_accuracy=best, test=None)
                    print("NaN loss: stopping", flush=True)
                    sys.exit(1)
                if stop:
                    break
                emit(handle, event="progress", epoch=epoch, step=step, steps=steps,
                     loss=2.0 - 0.1 * epoch, accuracy=0.2 + 0.1 * epoch)
                print(f"Epoch {epoch}/{epochs} {step}/{steps}", flush=True)
            if stop:
                emit(handle, event="run_end", status="interrupted", epoch=epoch - 1,
                     seconds=time.time() - start, best_val_accuracy=best, test=None)
                print("interrupted: checkpoint saved", flush=True)
                time.sleep(linger)
                sys.exit(130)
            val = round(min(0.95, 0.3 + 0.1 * epoch), 3)
            best = max(best, val)
            emit(handle, event="epoch_end", epoch=epoch, epochs=epochs, loss=2.0 - 0.1 * epoch,
                 accuracy=0.2 + 0.1 * epoch, val_loss=1.9 - 0.1 * epoch, val_accuracy=val, lr=0.1,
                 seconds=time.time() - t0)
            last = run_dir / "checkpoints" / "last"
            last.mkdir(parents=True, exist_ok=True)
            (last / "state.json").write_text(json.dumps({"epoch": epoch, "best_val_accuracy": best, "seed": 0}))
            emit(handle, event="checkpoint", epoch=epoch, path=str(last), best=val >= best)
        (run_dir / "eval.json").write_text(json.dumps({
            "accuracy": best, "loss": 1.2, "num_examples": 40, "class_names": ["a", "b"],
            "per_class_accuracy": [0.6, 0.5], "confusion_matrix": [[12, 8], [10, 10]]}))
        emit(handle, event="run_end", status="completed", epoch=epochs, seconds=time.time() - start,
             best_val_accuracy=best, test={"accuracy": best, "loss": 1.2})
    print(f"Test accuracy: {best}", flush=True)
    time.sleep(linger)

def report(args):
    out = pathlib.Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("# Report\n" + "".join(f"- {r}\n" for r in args.run_dirs))
    for run in args.run_dirs:
        (out / "figures" / f"{pathlib.Path(run).name}-confusion.png").write_bytes(b"")

parser = argparse.ArgumentParser(prog="gdfr")
commands = parser.add_subparsers(dest="command", required=True)
p = commands.add_parser("info")
p.add_argument("recipe"); p.add_argument("--variant", default="gdfrnet"); p.add_argument("--json", action="store_true")
p = commands.add_parser("train")
p.add_argument("recipe", nargs="?")
p.add_argument("--variant"); p.add_argument("--set", action="append", default=[])
for flag in ("--epochs", "--batch-size", "--limit-train", "--limit-test"):
    p.add_argument(flag, type=int)
p.add_argument("--data"); p.add_argument("--run-dir"); p.add_argument("--resume")
p = commands.add_parser("report")
p.add_argument("run_dirs", nargs="+"); p.add_argument("--out", default="report")
p.add_argument("--no-count", action="store_true")
args = parser.parse_args()
{"info": info, "train": train, "report": report}[args.command](args)
'''


def write_fake_gdfr(folder: pathlib.Path) -> list[str]:
    """Writes the fake `gdfr` script; returns the `trainer` command for `make_app`."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "fake_gdfr.py"
    script.write_text(FAKE_GDFR)
    return [sys.executable, str(script)]


# The fixtures themselves follow the contract ------------------------------------


def test_fixture_runs_read_back(tmp_path):
    runs = write_fixture_runs(tmp_path, running_pid=os.getpid(), broken=True)
    records, skipped = RunIndex(tmp_path).refresh()
    statuses = {r.path.name: r.state.effective_status() for r in records}
    assert statuses == {
        runs["completed"].name: "completed",
        runs["completed2"].name: "completed",
        runs["interrupted"].name: "interrupted",
        runs["failed"].name: "failed",
        runs["running"].name: "running",
    }
    assert {s.path.name: s.reason for s in skipped} == {
        runs["half_written"].name: "no events.jsonl",
        runs["garbage"].name: "events.jsonl has no readable events",
    }


def test_fake_gdfr_trains_and_reports(tmp_path):
    import subprocess

    command = write_fake_gdfr(tmp_path)
    run_dir = tmp_path / "runs" / "r1"
    subprocess.run([*command, "train", "x.toml", "--variant", "tiny", "--epochs", "2",
                    "--run-dir", str(run_dir)], check=True, capture_output=True, timeout=60)
    records, _ = RunIndex(tmp_path / "runs").refresh()
    (record,) = records
    assert record.state.status == "completed"
    assert record.state.epoch == 2 and record.state.variant == "tiny"


if __name__ == "__main__":
    target = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gdfr-tui-demo")
    write_recipes(target / "recipes")
    write_fixture_runs(target / "runs", broken=True)
    trainer = write_fake_gdfr(target)
    print(f"recipes: {target / 'recipes'}\nruns:    {target / 'runs'}\ntrainer: {' '.join(trainer)}")
