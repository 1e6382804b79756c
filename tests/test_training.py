"""`gdfr train` end to end: run directory, events, checkpoints, resume after SIGKILL, signals, NaN, errors."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# A narrow tiny model on a few real CIFAR-10 images: every module, seconds per epoch.
SMALL = ["--variant", "tiny", "--set", "model.overrides.widths=[8,16,16,32]", "--batch-size", "64"]


# One intra-op thread makes float reductions run in one fixed order, so that two
# processes (a straight run and a killed-and-resumed one) can agree bit for bit.
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def gdfr(*args, backend="torch", check=False, timeout=600, env=None):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "keras_gdfr.cli", *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, check=check, timeout=timeout)


def start_gdfr(*args, backend="torch", env=None):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "keras_gdfr.cli", *map(str, args)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def events(run_dir) -> list[dict]:
    path = pathlib.Path(run_dir) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate, run_dir, process, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate(events(run_dir)):
            return
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting; events: {[e['event'] for e in events(run_dir)]}")


def final_weights(run_dir) -> list[np.ndarray]:
    import h5py

    arrays = []
    last = json.loads((pathlib.Path(run_dir) / "checkpoints" / "last.json").read_text())["dir"]
    with h5py.File(pathlib.Path(run_dir) / "checkpoints" / last / "model.weights.h5") as file:
        file.visititems(lambda name, obj: arrays.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None)
    return arrays


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_train_end_to_end_writes_the_run_directory(cifar10_zip, tmp_path, backend):
    run_dir = tmp_path / "run"
    result = gdfr("train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 128,
                  "--limit-test", 64, "--epochs", 2, "--run-dir", run_dir, backend=backend)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "completed: 2 epochs, test accuracy" in result.stdout
    recipe = json.loads((run_dir / "recipe.json").read_text())
    assert recipe["model"]["variant"] == "tiny" and recipe["train"]["epochs"] == 2
    assert recipe["train"]["milestones"] == [1]  # the paper's 60/120/160 of 200, scaled to 2 epochs
    log = events(run_dir)
    kinds = [e["event"] for e in log]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    start = log[0]
    assert start["backend"] == backend and start["train_size"] == 128 and start["test_size"] == 64
    assert start["steps_per_epoch"] == 2 and start["params"] > 0 and start["macs"] > 0
    epoch_ends = [e for e in log if e["event"] == "epoch_end"]
    assert [e["epoch"] for e in epoch_ends] == [1, 2]
    assert [e["lr"] for e in epoch_ends] == pytest.approx([0.1, 0.02])
    for e in epoch_ends:
        assert 0 <= e["val_accuracy"] <= 1 and e["loss"] > 0 and e["seconds"] > 0
    assert any(e["event"] == "progress" for e in log)
    end = log[-1]
    assert end["status"] == "completed" and end["epoch"] == 2
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert end["test"]["accuracy"] == pytest.approx(evaluation["accuracy"])
    assert evaluation["num_examples"] == 64 and len(evaluation["confusion_matrix"]) == 10
    assert sum(map(sum, evaluation["confusion_matrix"])) == 64
    # The last validation pass and the final evaluation see the same images with the same weights.
    assert evaluation["accuracy"] == pytest.approx(epoch_ends[-1]["val_accuracy"], abs=1e-6)
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "checkpoints" / "best.weights.h5").is_file()
    assert json.loads((run_dir / "checkpoints" / "last.json").read_text()) == {"dir": "epoch-0002"}

    # `gdfr eval` reloads model.keras and reproduces the run's own evaluation.
    (run_dir / "eval.json").unlink()
    again = gdfr("eval", run_dir, backend=backend)
    assert again.returncode == 0, again.stderr[-3000:]
    reevaluated = json.loads((run_dir / "eval.json").read_text())
    assert reevaluated["accuracy"] == evaluation["accuracy"]
    assert reevaluated["confusion_matrix"] == evaluation["confusion_matrix"]
    assert reevaluated["loss"] == pytest.approx(evaluation["loss"], abs=1e-5)


def test_resume_after_sigkill_matches_uninterrupted_run(cifar10_zip, tmp_path):
    common = ["train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 192,
              "--limit-test", 64, "--epochs", 3, "--set", "data.pipeline=device"]
    straight = tmp_path / "straight"
    assert gdfr(*common, "--run-dir", straight, env=SINGLE_THREAD).returncode == 0

    killed = tmp_path / "killed"
    process = start_gdfr(*common, "--run-dir", killed, env=SINGLE_THREAD)
    # Kill it mid-epoch 2: after epoch 1's checkpoint and at least one step of epoch 2.
    wait_for(lambda log: any(e["event"] == "progress" and e["epoch"] == 2 for e in log), killed, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not any(e["event"] == "run_end" for e in events(killed))
    assert json.loads((killed / "checkpoints" / "last.json").read_text()) == {"dir": "epoch-0001"}

    resumed = gdfr("train", "--resume", killed, env=SINGLE_THREAD)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = events(killed)
    starts = [e for e in log if e["event"] == "run_start"]
    assert [s["initial_epoch"] for s in starts] == [0, 1]
    assert [s["pipeline"] for s in starts] == ["device", "device"]
    # Epoch 2's progress event comes at its last step (3 steps, under PROGRESS_INTERVAL_S), so the kill can
    # land after epoch 2's epoch_end record and before its checkpoint: the resumed run re-runs epoch 2 and
    # records it again, after its own run_start (readers keep an epoch's latest record: Run.epoch_ends).
    ends = [(i, e["epoch"]) for i, e in enumerate(log) if e["event"] == "epoch_end"]
    assert [epoch for _, epoch in ends] in ([1, 2, 3], [1, 2, 2, 3])
    resumed_at = log.index(starts[1])
    assert [epoch for i, epoch in ends if i > resumed_at] == [2, 3]

    for (name_a, a), (name_b, b) in zip(final_weights(straight), final_weights(killed), strict=True):
        assert name_a == name_b
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name_a)
    straight_end, killed_end = events(straight)[-1], log[-1]
    assert killed_end["status"] == "completed"
    assert killed_end["test"]["accuracy"] == straight_end["test"]["accuracy"]
    assert killed_end["test"]["loss"] == pytest.approx(straight_end["test"]["loss"], abs=1e-5)


def test_sigint_stops_gracefully_and_keeps_the_checkpoint(cifar10_zip, tmp_path):
    run_dir = tmp_path / "run"
    process = start_gdfr("train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 192,
                         "--limit-test", 64, "--epochs", 50, "--run-dir", run_dir)
    wait_for(lambda log: any(e["event"] == "checkpoint" for e in log), run_dir, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    log = events(run_dir)
    end = log[-1]
    assert end["event"] == "run_end" and end["status"] == "interrupted"
    assert end["epoch"] >= 1
    last = json.loads((run_dir / "checkpoints" / "last.json").read_text())["dir"]
    assert last == f"epoch-{end['epoch']:04d}"
    assert (run_dir / "checkpoints" / last / "model.weights.h5").is_file()
    assert not (run_dir / "model.keras").exists()


def test_nan_loss_stops_with_an_error_event(cifar10_zip, tmp_path):
    run_dir = tmp_path / "run"
    result = gdfr("train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 128,
                  "--limit-test", 64, "--epochs", 3, "--set", "train.lr=1e12", "--run-dir", run_dir)
    assert result.returncode == 1
    log = events(run_dir)
    errors = [e for e in log if e["event"] == "error"]
    assert errors and errors[0]["kind"] == "nan_loss"
    assert "loss became" in errors[0]["message"] and "last good checkpoint is kept" in errors[0]["message"]
    # The terminal says why too (it said only "failed: 0 epoch(s)").
    assert result.stderr.strip().splitlines()[-1] == f"error: {errors[0]['message']} (run directory: {run_dir})"
    assert log[-1]["event"] == "run_end" and log[-1]["status"] == "failed"
    validated = [e["val_accuracy"] for e in log if e["event"] == "epoch_end"]
    # The best of the validated epochs; null when none was (it was -1.0, outside [0, 1]).
    assert log[-1]["best_val_accuracy"] == (max(validated) if validated else None)
    assert not (run_dir / "model.keras").exists()


def test_cli_errors_are_one_clear_line(tmp_path, cifar10_zip):
    missing = gdfr("train", "recipes/nope.toml")
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: recipes/nope.toml: cannot read recipe: no such file")
    assert "Traceback" not in missing.stderr

    bad_key = gdfr("train", "recipes/cifar10.toml", "--set", "train.epoch=3")
    assert bad_key.returncode == 2
    assert "train.epoch: unknown key; did you mean 'train.epochs'?" in bad_key.stderr

    bad_flag = gdfr("train", "recipes/cifar10.toml", "--epochs", "zero")
    assert bad_flag.returncode == 2 and "'zero' is not a valid integer" in bad_flag.stderr

    bad_variant = gdfr("train", "recipes/cifar10.toml", "--variant", "net6")
    assert bad_variant.returncode == 2 and "net6" in bad_variant.stderr

    bad_data = gdfr("train", "recipes/cifar10.toml", "--variant", "tiny", "--data", tmp_path / "absent.zip",
                    "--run-dir", tmp_path / "run")
    assert bad_data.returncode == 1
    assert str(tmp_path / "absent.zip") in bad_data.stderr and "Traceback" not in bad_data.stderr

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    clash = gdfr("train", "recipes/cifar10.toml", "--variant", "tiny", "--data", cifar10_zip, "--run-dir", existing)
    assert clash.returncode == 1 and "already exists" in clash.stderr
    assert (existing / "keep.txt").read_text() == "precious"

    not_a_run = gdfr("train", "--resume", tmp_path)
    assert not_a_run.returncode == 2 and "not a run directory" in not_a_run.stderr


def in_process(*args) -> str:
    """A read-only command's stdout, run in this process (no 3-5 s interpreter start)."""
    from click.testing import CliRunner

    from keras_gdfr.cli import main

    outcome = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    return outcome.stdout


def test_info_reports_schedule_and_counts(monkeypatch):
    monkeypatch.chdir(REPO)  # the recipes' relative paths
    facts = json.loads(in_process("info", "recipes/cifar10.toml", "--variant", "net2", "--json"))
    assert facts["params"] == 21_282_122 and facts["macs"] == 1_159_402_496
    assert facts["batch_size"] == 128 and facts["milestones"] == [60, 120, 160] and facts["epochs"] == 200
    text = in_process("info", "recipes/imagenette.toml", "--variant", "tiny", "--epochs", 100)
    assert "batch 64" in text and "30/60/80 of 100" in text
    # 256 px: every variant takes ResNet-34's 7x7 stem + max-pool (net2 = net1 there).
    large = json.loads(in_process("info", "recipes/imagenette.toml", "--variant", "net2", "--json"))
    assert large["overrides"] == {"stem": "7x7"} and large["params"] == 21_289_802


def test_recipes_lists_recipes_and_variants():
    text = in_process("recipes")
    for name in ("cifar10", "cifar100", "svhn", "gtsrb", "imagenette", "imagewoof", "net1", "gdfrnet-dense", "tiny"):
        assert name in text
