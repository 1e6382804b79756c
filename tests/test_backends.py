"""The same weights give the same outputs on torch, tensorflow and jax, and in both data formats.

The weights travel as a `.keras` file saved by the backend under test: from torch, with
the conv kernels stored in PyTorch's memory order (`layers._utils.torch_kernel_layout`),
the file loads unchanged on jax and tensorflow.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_gdfr import GDFRNet
from tests.helpers.weights import randomise_batchnorm

REPO = pathlib.Path(__file__).resolve().parents[1]
# `tiny` holds every module: stem, FRRB with FRM, FGCM, FOM, the separable down-sampling path.
VARIANT = "tiny"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backends")
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = GDFRNet(VARIANT, input_shape=(32, 32, 3), num_classes=10)
    randomise_batchnorm(model, rng)
    images = rng.random((4, 32, 32, 3), dtype="float32")
    np.save(tmp / "inputs.npy", images)
    model.save(tmp / "model.keras")
    reference = keras.ops.convert_to_numpy(model(images, training=False))
    return tmp, reference


# TensorFlow's CPU kernels do not implement NCHW convolutions; torch and jax do.
FORMATS = {"torch": ("channels_last", "channels_first"), "tensorflow": ("channels_last",),
           "jax": ("channels_last", "channels_first")}


@pytest.fixture(scope="module")
def outputs(saved_model):
    """backend -> {data_format: outputs}; one subprocess per backend computes all its formats."""
    tmp, _ = saved_model
    done = {}

    def get(backend):
        if backend not in done:
            out = tmp / backend
            out.mkdir()
            env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
            subprocess.run(
                [sys.executable, "-m", "tests.helpers.run_tiny", str(tmp / "model.keras"),
                 str(tmp / "inputs.npy"), str(out), VARIANT, *FORMATS[backend]],
                check=True, env=env, cwd=REPO, capture_output=True, timeout=600,
            )
            done[backend] = {f: np.load(out / f"out-{f}.npy") for f in FORMATS[backend]}
        return done[backend]

    return get


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_same_outputs_on_every_backend(saved_model, outputs, backend):
    _, reference = saved_model
    np.testing.assert_allclose(outputs(backend)["channels_last"], reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_channels_first_matches_channels_last(saved_model, outputs, backend):
    _, reference = saved_model
    np.testing.assert_allclose(outputs(backend)["channels_first"], reference, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="PyTorch's memory order")
def test_torch_conv_kernels_are_stored_in_pytorch_memory_order():
    """Each conv kernel is a view of a buffer in PyTorch's order: no copy per conv call.

    Conv2D (kh, kw, in, out) and Conv2DTranspose (kh, kw, out, in) over (out|in, in|out, kh, kw);
    DepthwiseConv2D and FGCM's fixed LoG (kh, kw, in, 1) over (in, 1, kh, kw).
    """
    keras.utils.set_random_seed(0)
    model = GDFRNet(VARIANT, input_shape=(32, 32, 3), num_classes=10)
    layers = list(model._flatten_layers())
    orders = {keras.layers.Conv2D: (3, 2, 0, 1), keras.layers.Conv2DTranspose: (3, 2, 0, 1),
              keras.layers.DepthwiseConv2D: (2, 3, 0, 1)}
    kind_of = lambda layer: next((kind for kind in orders if isinstance(layer, kind)), None)  # noqa: E731
    kernels = [(layer.kernel, orders[kind_of(layer)]) for layer in layers if kind_of(layer)]
    kernels += [(layer.log_kernel, (2, 3, 0, 1)) for layer in layers if hasattr(layer, "log_kernel")]
    counts = {kind: sum(kind_of(layer) is kind for layer in layers) for kind in orders}
    assert counts[keras.layers.Conv2D] > 20 and counts[keras.layers.DepthwiseConv2D] >= 7, counts
    assert counts[keras.layers.Conv2DTranspose] == 4 and len(kernels) == sum(counts.values()) + 2
    for kernel, order in kernels:
        assert kernel.value.permute(*order).is_contiguous(), kernel.path
        assert tuple(kernel.shape) == tuple(kernel.value.shape)
    for kernel, order in (kernels[0], kernels[-1]):
        values = keras.ops.convert_to_numpy(kernel)
        kernel.assign(values + 1.0)  # assignment keeps the layout
        assert kernel.value.permute(*order).is_contiguous()
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), values + 1.0)
