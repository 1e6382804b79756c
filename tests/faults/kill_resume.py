"""SIGKILL `gdfr train` at random moments, resume each time, compare with an uninterrupted run (issue 13).

    python tests/faults/kill_resume.py --data CIFAR10.zip --kills 10 --out /tmp/kills [--seed 0]

A straight run and a run killed `--kills` times (at a random moment after its
process starts: while loading, training, validating or writing a checkpoint) and
resumed with `gdfr train --resume` after each kill, then once more to the end.
Prints one JSON summary: kills, resumes that failed, whether every final weight is
bit-for-bit equal. tests/test_integrity_faults.py runs it with 2 kills.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = ["--variant", "tiny", "--set", "model.overrides.widths=[8,16,16,32]", "--batch-size", "32"]
# One intra-op thread: float reductions in one order, so two processes agree bit for bit.
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def command(*args) -> list[str]:
    return [sys.executable, "-m", "keras_gdfr.cli", *map(str, args)]


def env() -> dict:
    return {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch"), **ENV}


def weights(run_dir: pathlib.Path) -> dict:
    import h5py

    arrays = {}
    with h5py.File(run_dir / "checkpoints" / "best.weights.h5") as best, h5py.File(run_dir / "model.keras.h5") as final:
        for name, file in (("best", best), ("final", final)):
            file.visititems(lambda key, obj: arrays.__setitem__(f"{name}/{key}", obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def read_log(run_dir: pathlib.Path) -> list[dict]:
    from keras_gdfr.training.events import read_events

    path = run_dir / "events.jsonl"
    return list(read_events(path)) if path.exists() else []


def unpack_model(run_dir: pathlib.Path) -> None:
    import zipfile

    with zipfile.ZipFile(run_dir / "model.keras") as archive:
        (run_dir / "model.keras.h5").write_bytes(archive.read("model.weights.h5"))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    common = ["train", "recipes/cifar10.toml", *MODEL, "--data", args.data, "--limit-train", 96,
              "--limit-test", 32, "--epochs", args.epochs]
    straight, killed = args.out / "straight", args.out / "killed"
    subprocess.run(command(*common, "--run-dir", straight), env=env(), cwd=REPO, check=True, capture_output=True)

    log = read_log(straight)
    train_s = log[-1]["time"] - log[0]["time"]  # run_start to run_end of the straight run
    kills, failures, moments = 0, [], []
    first = True
    while True:
        args_now = [*common, "--run-dir", killed] if first else ["train", "--resume", killed]
        if kills == args.kills:
            final = subprocess.run(command(*args_now), env=env(), cwd=REPO, capture_output=True, text=True)
            if final.returncode != 0:
                failures.append(final.stderr.strip().splitlines()[-1:])
            break
        starts = sum(e["event"] == "run_start" for e in read_log(killed))
        process = subprocess.Popen(command(*args_now), env=env(), cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        # One kill in five while it starts (imports, data); the others anywhere in its training.
        early = rng.random() < 0.2
        delay = rng.uniform(0.2, 3.0) if early else rng.uniform(0.0, train_s)
        if not early:
            while process.poll() is None and sum(e["event"] == "run_start" for e in read_log(killed)) == starts:
                time.sleep(0.02)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            moments.append(("start+" if early else "run_start+") + f"{delay:.2f}s")
        else:  # ended before the kill: a finished run, or a failed resume
            if process.returncode != 0:
                failures.append(process.stderr.read().strip().splitlines()[-1:])
                break
            if (killed / "eval.json").exists():
                break
        first = not (killed / "recipe.json").exists()  # killed before it wrote its recipe: start it anew

    summary = {"kills": kills, "moments": moments, "failed_resumes": failures, "completed": False, "equal": False}
    end = read_log(killed)[-1]
    summary["completed"] = end.get("event") == "run_end" and end.get("status") == "completed"
    if summary["completed"]:
        unpack_model(straight)
        unpack_model(killed)
        a, b = weights(straight), weights(killed)
        summary["arrays"] = len(a)
        summary["equal"] = a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
        summary["test_accuracy"] = [json.loads((d / "eval.json").read_text())["accuracy"] for d in (straight, killed)]
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["completed"] and result["equal"] and not result["failed_resumes"] else 1)
