"""`gdfr bench`: runs end to end on the CPU at a tiny size and reports consistent numbers.

Speed goals live in the benchmark's output (docs/performance.md), not here: these
tests check the fields and their arithmetic, never a rate.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result():
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "keras_gdfr.cli", "bench", "--variant", "tiny", "--steps", "2", "--batch", "8",
         "--warmup", "1", "--threads", "1", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fields_and_sanity(result):
    assert result["variant"] == "tiny" and result["batch"] == 8 and result["input"] == 32
    assert result["backend"] == "torch" and result["device"] == "cpu"
    assert result["data_format"] == "channels_first"  # the torch default
    assert result["precision"] == "float32" and result["jit"] is False
    for key in ("train_img_s", "infer_img_s", "train_step_s", "infer_step_s", "peak_memory_mib",
                "device_pipeline_img_s", "warmup_s"):
        assert result[key] > 0, key
    assert result["finite"] and result["final_loss"] > 0
    assert result["params"] == 711_308 and result["macs"] > 0
    assert result["peak_memory_kind"].startswith("ru_maxrss")
    assert result["commit"] and result["date"] and len(result["load_avg_start"]) == 3


def test_arithmetic_is_consistent(result):
    assert result["train_img_s"] == pytest.approx(result["batch"] / result["train_step_s"])
    assert result["train_tflops"] == pytest.approx(result["train_img_s"] * 6 * result["macs"] / 1e12)
    assert result["infer_tflops"] == pytest.approx(result["infer_img_s"] * 2 * result["macs"] / 1e12)
    assert result["train_size"] == 50_000 and result["test_size"] == 10_000
    assert result["epoch_train_s"] == pytest.approx(50_000 / result["train_img_s"])
    assert result["epoch_s"] == pytest.approx(result["epoch_train_s"] + 10_000 / result["infer_img_s"])
    assert result["schedule_200_s"] == pytest.approx(200 * result["epoch_s"])


def test_table_names_every_figure(result):
    from keras_gdfr.bench import format_table

    table = format_table(result)
    for word in ("tiny @ 32 px", "img/s", "TFLOP/s", "MiB", "200 epochs", "device pipeline", "load average"):
        assert word in table


def test_bad_flags_are_refused():
    from click.testing import CliRunner

    from keras_gdfr.cli import main

    outcome = CliRunner().invoke(main, ["bench", "--variant", "nope"])
    assert outcome.exit_code != 0 and "unknown variant 'nope'" in outcome.output
    outcome = CliRunner().invoke(main, ["bench", "--precision", "float64"])
    assert outcome.exit_code != 0


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "torch", reason="the twin is PyTorch")
def test_against_native_prints_the_ratio():
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "keras_gdfr.cli", "bench", "--variant", "tiny", "--steps", "1", "--batch", "4",
         "--warmup", "1", "--threads", "1", "--against", "native", "--rounds", "2", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["against"] == "native" and result["against_batch"] == 4
    assert result["against_keras_call"] == "fit"  # the step fit (gdfr train) makes, not train_on_batch
    assert result["keras_native_ratio"] == pytest.approx(result["keras_img_s"] / result["native_img_s"])
    assert result["keras_img_s"] > 0 and result["native_img_s"] > 0
    from keras_gdfr.bench import format_table

    assert "Keras / native" in format_table(result)


def test_against_native_names_a_wrong_keras_call():
    from keras_gdfr.bench_native import against_native

    with pytest.raises(ValueError, match="keras_call must be 'fit' or 'train_on_batch'. Received: keras_call='predict'"):
        against_native(keras_call="predict")
