"""Mixed precision done right: Keras's layer harness on every backend, float32 LoG, float32 logits."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_gdfr import GDFRNet
from keras_gdfr.layers import FGCM, FRRB

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def mixed_bfloat16():
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy(previous)


# TensorFlow's CPU kernels have no NCHW convolution (docs/testing.md).
FORMATS = {"jax": ("channels_last", "channels_first"), "tensorflow": ("channels_last",), "torch": ("channels_last",)}


@pytest.fixture(scope="module")
def harness_results(tmp_path_factory):
    """backend -> {data_format: {layer: "ok" | error}}; one subprocess per backend for all its formats."""
    done = {}

    def get(backend):
        if backend not in done:
            output = tmp_path_factory.mktemp(f"harness-{backend}") / "harness.json"
            env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
            subprocess.run([sys.executable, "-m", "tests.helpers.layer_harness", str(output), *FORMATS[backend]],
                           check=True, env=env, cwd=REPO, capture_output=True, timeout=900)
            done[backend] = json.loads(output.read_text())
        return done[backend]

    return get


@pytest.mark.parametrize(
    "backend, data_format",
    [("jax", "channels_last"), ("tensorflow", "channels_last"), ("torch", "channels_last"), ("jax", "channels_first")],
)
def test_keras_layer_harness_passes_with_its_mixed_precision_check(backend, data_format, harness_results):
    # keras.src.testing.TestCase.run_layer_test, mixed-precision check on (Keras itself skips
    # it on torch without CUDA; the helper then runs a mixed_bfloat16 forward pass instead).
    results = harness_results(backend)[data_format]
    assert results == {"FRM": "ok", "FGCM": "ok", "FOM": "ok", "FRRB": "ok"}, results


def test_fgcm_answers_zero_to_a_constant_input_under_mixed_bfloat16(mixed_bfloat16):
    layer = FGCM()
    x = np.full((1, 16, 16, 4), 1.0, "float32")
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.log_kernel.dtype) == "float32"
    detail = keras.ops.convert_to_numpy(keras.ops.cast(layer.detail(keras.ops.cast(x, "bfloat16")), "float32"))
    # Away from the 3-pixel zero-padded border the LoG of a constant is 0. Applied in
    # bfloat16 (the kernel cast to bfloat16) it answered 0.0041 here.
    assert np.abs(detail[:, 3:-3, 3:-3]).max() < 1e-5


def test_sublayers_take_the_parents_policy():
    block = FRRB(16, strides=2, reduction=4, dtype="mixed_bfloat16")
    block.build((2, 8, 8, 8))
    policies = {layer.path: layer.dtype_policy.name for layer in block._flatten_layers(include_self=False)}
    assert policies and set(policies.values()) == {"mixed_bfloat16"}, policies


def test_logits_are_float32_under_a_mixed_policy(mixed_bfloat16):
    images = np.random.default_rng(0).random((2, 16, 16, 3), dtype="float32")
    model = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=5)
    assert keras.backend.standardize_dtype(model(images).dtype) == "float32"
    assert model.get_layer("stem").compute_dtype == "bfloat16"
    explicit = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=5, head_dtype="mixed_bfloat16")
    assert keras.backend.standardize_dtype(explicit(images).dtype) == "bfloat16"
