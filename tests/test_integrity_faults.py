"""Faults for real (issue 13): a full disk on a tmpfs, SIGKILL at random moments, a kill during the model save.

The scripts in tests/faults/ run these at any size by hand; here they run small.
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import zipfile

import pytest

from tests.faults import kill_resume
from tests.test_training import events

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO), "PYTHON": sys.executable}


def stderr_lines(text: str) -> list[str]:
    """stderr without TensorFlow's C++ start-up lines (issue 16 removes those)."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith(("I0000", "W0000", "E0000", "WARNING: All log"))]


@pytest.mark.slow  # the default run has the simulated ENOSPC of tests/test_integrity_checkpoints.py
def test_a_full_disk_is_one_line_keeps_the_checkpoint_and_resumes(cifar10_zip, tmp_path):
    result = subprocess.run([REPO / "tests" / "faults" / "disk_full.sh", cifar10_zip, tmp_path], env=ENV, cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    if result.returncode == 77:
        pytest.skip("no tmpfs can be mounted here (needs root or user namespaces); the simulated ENOSPC of "
                    "tests/test_integrity_checkpoints.py still runs")
    assert result.returncode == 0, result.stderr[-2000:]
    read = lambda name: (tmp_path / name).read_text()  # noqa: E731
    kept = {"./checkpoints/epoch-0001/model.weights.h5", "./checkpoints/epoch-0001/optimizer.npz",
            "./checkpoints/epoch-0001/state.json", "./checkpoints/last.json", "./checkpoints/best.weights.h5"}
    for step in ("1", "2"):  # the new run, then a resume on the still-full disk
        assert read(f"{step}.rc").strip() == "1", read(f"{step}.err")[-2000:]  # not 139 (the segfault)
        lines = stderr_lines(read(f"{step}.err"))
        assert lines[-1].startswith("error: ") and "disk full (No space left on device)" in lines[-1]
        assert "the last complete checkpoint (epoch 1) is kept" in lines[-1] and "gdfr train --resume" in lines[-1]
        assert not [line for line in lines if "Traceback" in line or "h5py" in line]
        files = set(read(f"{step}.files").split())
        assert kept <= files and not [f for f in files if "/." in f]  # epoch 1 intact, no temp file left
    assert read("3.rc").strip() == "0", read("3.err")[-2000:]
    log = events(tmp_path)
    assert log[-1]["status"] == "completed" and log[-1]["epoch"] == 3
    assert [e["initial_epoch"] for e in log if e["event"] == "run_start"] == [0, 1, 1]
    ends = [e for e in log if e["event"] == "run_end"]  # epoch 1 was validated and kept (issue 24: was null)
    assert [e["status"] for e in ends] == ["failed", "failed", "completed"]
    assert all(isinstance(e["best_val_accuracy"], float) for e in ends)
    assert [e["kind"] for e in log if e["event"] == "error"] == ["disk_full", "disk_full"]


@pytest.mark.slow  # the default run has one SIGKILL + resume, bit for bit (tests/test_training.py)
def test_sigkill_at_random_moments_then_resume_matches_a_straight_run(cifar10_zip, tmp_path):
    summary = kill_resume.main(["--data", str(cifar10_zip), "--out", str(tmp_path), "--kills", "2",
                                "--epochs", "2", "--seed", "13"])
    assert summary["kills"] >= 1 and not summary["failed_resumes"]  # a late kill may find the run done
    assert summary["completed"] and summary["equal"], summary


SAVER = """
import pathlib, sys, keras
from keras_gdfr.training.checkpoints import save_model
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(4096), keras.layers.Dense(10)])
target = pathlib.Path(sys.argv[1])
save_model(model, target)
print("ready", flush=True)
while True:
    save_model(model, target)
"""


def test_a_kill_during_the_model_save_never_leaves_a_torn_file(tmp_path):
    import keras

    rng = random.Random(4)
    savers = []
    for k in range(3):  # three at once: one start-up for all
        target = tmp_path / f"m{k}" / "model.keras"
        target.parent.mkdir()
        savers.append((target, subprocess.Popen([sys.executable, "-c", SAVER, target], env=ENV, cwd=REPO,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for target, process in savers:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()[-2000:]
    for target, process in savers:
        try:
            process.wait(timeout=rng.uniform(0.05, 1.0))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert process.returncode == -signal.SIGKILL
        with zipfile.ZipFile(target) as archive:
            assert archive.testzip() is None
        assert keras.saving.load_model(target).count_params() == 64 * 4096 + 4096 + 4096 * 10 + 10
