"""Every torch tensor on the model's device: training, evaluation and input batches on a stand-in accelerator.

`tests/helpers/device_standin.py` gives this CPU-only PyTorch a device of its own
(`gdfrdev`, real values held on the CPU): a CPU tensor mixed into an op with the model's
tensors raises as on a GPU, and every host-to-device copy is recorded with the
keras_gdfr line that caused it. One subprocess (`tests/helpers/standin_checks.py`) runs
`fit` with the device pipeline (partial batch, validation), `evaluate`, `predict`,
synchronized BatchNorm, mixed_bfloat16 and two planted mistakes, on the stand-in and
(for the numbers) on the CPU. Checked to fail: a CPU `torch.tensor` in synchronized
BatchNorm's moments (DeviceMismatch), and the device pipeline's labels left on the CPU
(an upload per batch from device_pipeline.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("torch")
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checks():
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "tests.helpers.standin_checks"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def ok(result):
    """A check's result; a check that raised shows its error here."""
    assert not (isinstance(result, dict) and "error" in result), result.get("error")
    return result


def test_training_evaluation_and_prediction_run_on_the_stand_in_and_equal_the_cpu(checks):
    standin, cpu = ok(checks["standin"]), ok(checks["cpu"])
    assert standin["variable_devices"] == ["gdfrdev:0"]  # weights, BatchNorm statistics, SGD buffers, metrics
    assert standin["batch_devices"] == ["gdfrdev:0"]  # device pipeline: train (partial) and eval batches
    assert cpu["variable_devices"] == cpu["batch_devices"] == ["cpu"]
    assert standin["partial_batch"] == 4
    for key in ("loss", "val_loss", "evaluate", "predict"):  # the same kernels on the same values
        assert standin[key] == cpu[key], key


def test_synchronized_batchnorm_runs_on_the_stand_in(checks):
    sync = ok(checks["sync_batchnorm"])
    assert sync["synced_devices"] == sync["local_devices"] == ["gdfrdev:0"]
    assert sync["synced"] == pytest.approx(sync["local"], rel=1e-5)  # one rank: the global batch is the local one


def test_mixed_bfloat16_runs_on_the_stand_in(checks):
    bf16 = ok(checks["mixed_bfloat16"])
    assert bf16["variable_devices"] == ["gdfrdev:0"] and bf16["input_dtype"] == "torch.bfloat16"
    assert 0 < bf16["loss"] < 10


def test_no_host_to_device_copy_from_our_code_in_a_step_or_a_batch(checks):
    uploads = ok(checks["uploads"])
    assert uploads["batch"] == []  # constants made once per pipeline (augment.Ops.const)
    assert uploads["train_step"] == []
    assert uploads["eval_step"] == []


def test_the_stand_in_catches_planted_cpu_tensors(checks):
    assert "aten.cat.default: a (1,) torch.float32 CPU tensor mixed with gdfrdev tensors" in ok(checks["planted_cpu_operand"])
    assert any("data/device_pipeline.py" in u and "(8,) torch.int32" in u for u in ok(checks["planted_cpu_labels"]))
