"""`gdfr train`, `gdfr eval` and `gdfr bench` run where TensorFlow cannot be imported.

A meta-path blocker (installed before anything else in a fresh interpreter) makes
`import tensorflow` and `import tensorflow_datasets` fail as on a machine without
them; the device pipeline then feeds `model.fit`, and what needs TensorFlow says so
in one line.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
BLOCKED = ("tensorflow", "tensorflow_datasets", "tf_keras")
# Every meta-path finder is wrapped so that it finds none of BLOCKED: `import tensorflow`
# raises ModuleNotFoundError and importlib.util.find_spec returns None, as without the package.
BLOCKER = f"""
import sys
class Hide:
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find else None
    def __getattr__(self, attr):
        return getattr(self.inner, attr)
sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
try:
    import tensorflow
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("the blocker did not block")
import runpy
sys.argv = ["gdfr"] + sys.argv[1:]
try:
    runpy.run_module("keras_gdfr.cli", run_name="__main__")
finally:
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r} and sys.modules[m] is not None)
    if leaked:
        print("LEAKED", leaked, file=sys.stderr)
"""
SMALL = ["--variant", "tiny", "--set", "model.overrides.widths=[8,16,16,32]", "--batch-size", "32"]


def gdfr_without_tf(*args, backend="torch"):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", BLOCKER, *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_train_and_eval_without_tensorflow(cifar10_zip, tmp_path):
    run_dir = tmp_path / "run"
    result = gdfr_without_tf("train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 64,
                             "--limit-test", 32, "--epochs", 2, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LEAKED" not in result.stderr
    assert "completed: 2 epochs, test accuracy" in result.stdout
    start = json.loads((run_dir / "events.jsonl").read_text().splitlines()[0])
    assert start["pipeline"] == "device" and start["pipeline_reason"].startswith("auto:")
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["num_examples"] == 32
    (run_dir / "eval.json").unlink()
    again = gdfr_without_tf("eval", run_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "eval.json").read_text())["accuracy"] == evaluation["accuracy"]


def test_what_needs_tensorflow_says_so_in_one_line(cifar10_zip, tmp_path):
    forced = gdfr_without_tf("train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 32,
                             "--limit-test", 32, "--epochs", 1, "--run-dir", tmp_path / "a",
                             "--set", "data.pipeline=tf.data")
    assert forced.returncode != 0
    line = forced.stderr.strip().splitlines()[-1]
    assert "needs TensorFlow, which is not installed (pip install tensorflow-cpu" in line
    assert "data.pipeline" in line
    catalog = gdfr_without_tf("train", "recipes/cifar10.toml", *SMALL, "--run-dir", tmp_path / "b")
    assert catalog.returncode != 0
    line = catalog.stderr.strip().splitlines()[-1]
    assert "needs tensorflow-datasets and TensorFlow (pip install tensorflow-datasets tensorflow-cpu)" in line


def test_info_and_bench_without_tensorflow():
    info = gdfr_without_tf("info", "recipes/cifar10.toml", "--variant", "tiny", "--json")
    assert info.returncode == 0, info.stderr[-3000:]
    assert json.loads(info.stdout)["pipeline"] == "device"
    bench = gdfr_without_tf("bench", "--variant", "tiny", "--steps", "1", "--warmup", "1", "--batch", "4",
                            "--threads", "1", "--json")
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert json.loads(bench.stdout.strip().splitlines()[-1])["device_pipeline_img_s"] > 0


def test_tf_data_on_torch_is_quiet_and_keeps_tensorflow_off_the_gpus(cifar10_zip, tmp_path):
    """tf.data on torch: no TensorFlow C++ notices on the terminal; TensorFlow sees no GPU."""
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    args = ["train", "recipes/cifar10.toml", *SMALL, "--data", cifar10_zip, "--limit-train", 32, "--limit-test", 32,
            "--epochs", 1, "--run-dir", tmp_path / "run", "--set", "data.pipeline=tf.data"]
    result = subprocess.run(
        [sys.executable, "-m", "keras_gdfr.cli", *map(str, args)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for noise in ("oneDNN", "cuda", "absl::InitializeLog", "I0000", "cpu_feature_guard", "TF-TRT"):
        assert noise not in result.stderr, result.stderr[-2000:]
    start = json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[0])
    assert start["pipeline"] == "tf.data"
    script = ("import keras; from keras_gdfr.data.tf_runtime import import_tensorflow; tf = import_tensorflow(); "
              "print('VISIBLE', tf.config.get_visible_devices('GPU'), keras.backend.backend())")
    probe = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert "VISIBLE [] torch" in probe.stdout, probe.stderr[-2000:]
    assert "oneDNN" not in probe.stderr and "cuda" not in probe.stderr
