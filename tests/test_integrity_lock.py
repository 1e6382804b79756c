"""The run-directory lock (issue 13): one trainer per run directory, stale after a crash."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from keras_gdfr.training.events import LOCK_FILE
from keras_gdfr.training.runlock import RunLock, RunLocked, is_locked, read_lock
from tests.test_training import SMALL, events, gdfr, start_gdfr, wait_for


def test_lock_is_exclusive_and_released(tmp_path):
    first = RunLock(tmp_path, "torch")
    first.acquire()
    holder = json.loads((tmp_path / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["backend"] == "torch" and isinstance(holder["started"], float)
    assert is_locked(tmp_path)
    with pytest.raises(RunLocked, match=f"in use by pid {os.getpid()} on {socket.gethostname()}"):
        RunLock(tmp_path, "jax").acquire()
    first.release()
    assert not is_locked(tmp_path)
    assert read_lock(tmp_path) == holder  # the file stays: its content is history
    with RunLock(tmp_path, "jax"):
        assert read_lock(tmp_path)["backend"] == "jax"


def test_second_resume_of_a_live_run_is_refused_and_a_killed_run_resumes(cifar10_zip, tmp_path):
    run_dir = tmp_path / "run"
    process = start_gdfr("train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 128,
                         "--limit-test", 64, "--epochs", 2, "--run-dir", run_dir)
    try:
        wait_for(lambda log: any(e["event"] == "run_start" for e in log), run_dir, process)
        process.send_signal(signal.SIGSTOP)  # alive and holding the lock, but it cannot finish meanwhile
        holder = read_lock(run_dir)
        assert holder["pid"] == process.pid and holder["backend"] == "torch"
        before = (run_dir / "events.jsonl").read_bytes()

        second = gdfr("train", "--resume", run_dir)
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert lines[-1] == lines[-1].strip() and "Traceback" not in second.stderr
        assert f"error: {run_dir}: run directory is in use by pid {process.pid}" in lines[-1]
        assert (run_dir / "events.jsonl").read_bytes() == before  # the refused trainer wrote nothing

        (run_dir / LOCK_FILE).unlink()  # a user "unlocking" the live run (issue 24): the directory's flock holds
        third = gdfr("train", "--resume", run_dir)
        assert third.returncode == 1 and "Traceback" not in third.stderr
        assert third.stderr.strip().splitlines()[-1] == (
            f"error: {run_dir}: run directory is in use by another process (its run.lock is gone); stop that run "
            "first (or wait for it to end)")
        assert (run_dir / "events.jsonl").read_bytes() == before
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)

    assert not is_locked(run_dir) and read_lock(run_dir) is None  # stale: the kernel dropped the flock (file deleted above)
    resumed = gdfr("train", "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert events(run_dir)[-1]["status"] == "completed"
    assert read_lock(run_dir)["pid"] != process.pid
