"""Subprocess helper: Keras's own layer test harness on the paper's layers, one backend.

Usage: python -m tests.helpers.layer_harness OUTPUT.json [DATA_FORMAT...] (KERAS_BACKEND set by the
caller; DATA_FORMAT channels_last (default) and/or channels_first, shapes transposed to match; one
process for all of them, as each start of Keras and a backend costs seconds).

Runs `keras.src.testing.TestCase.run_layer_test` (build, serialization, symbolic
and eager calls, a training step, and its mixed-precision check: the layer built
with `dtype="mixed_float16"` must return its compute dtype and keep float32
weights) on FRM, FGCM, FOM and FRRB. Keras skips the mixed-precision check on
torch without CUDA (torch's CPU kernels lack half-precision conv backward), so on
torch this helper also runs a forward pass under `mixed_bfloat16` and checks the
dtypes itself. Writes {data_format: {layer: "ok" | error text}} to OUTPUT.json.
"""

from __future__ import annotations

import json
import sys
import traceback

import keras
import numpy as np
from keras.src.testing import TestCase

from keras_gdfr.layers import FGCM, FOM, FRM, FRRB

CASES = {
    "FRM": (FRM, {"reduction": 4}, (2, 8, 8, 16), (2, 8, 8, 16)),
    "FGCM": (FGCM, {}, (2, 8, 8, 4), (2, 8, 8, 4)),
    # A tuple, not a list: the harness's tensorflow training step cannot batch a list.
    "FOM": (FOM, {}, ((2, 8, 8, 8), (2, 4, 4, 16)), (2, 8, 8, 8)),
    "FRRB": (FRRB, {"filters": 16, "strides": 2, "reduction": 4}, (2, 8, 8, 8), (2, 4, 4, 16)),
}


class _Harness(TestCase):
    def runTest(self):  # unittest wants one; the checks are called directly
        pass


def _nchw(shape):
    return (shape[0], shape[3], shape[1], shape[2])


def _layout(input_shape, output_shape, data_format):
    """The NHWC shapes of CASES in `data_format`."""
    if data_format == "channels_last":
        return input_shape, output_shape
    inputs = tuple(map(_nchw, input_shape)) if isinstance(input_shape[0], tuple) else _nchw(input_shape)
    return inputs, _nchw(output_shape)


def _data(input_shape):
    """Random inputs of `input_shape` (a shape, or a tuple of shapes for FOM)."""
    rng = np.random.default_rng(0)
    if isinstance(input_shape[0], tuple):
        return tuple(rng.random(shape, dtype="float32") for shape in input_shape)
    return rng.random(input_shape, dtype="float32")


def _torch_mixed_forward(layer_cls, kwargs, input_shape) -> None:
    """The mixed-precision check Keras skips on torch CPU, forward only, in bfloat16."""
    layer = layer_cls(**kwargs, dtype="mixed_bfloat16")
    output = layer(_data(input_shape))
    dtype = keras.backend.standardize_dtype(output.dtype)
    if dtype != "bfloat16":
        raise AssertionError(f"{layer_cls.__name__} under mixed_bfloat16 returned {dtype}")
    for sublayer in layer._flatten_layers(include_self=False):
        if sublayer.dtype_policy.name != "mixed_bfloat16":
            raise AssertionError(f"{sublayer.path} has policy {sublayer.dtype_policy.name}, not the parent's")
    wrong = [w.path for w in layer.weights if keras.backend.standardize_dtype(w.dtype) != "float32"]
    if wrong:
        raise AssertionError(f"weights not float32: {wrong}")


def check_layers(harness: TestCase, data_format: str) -> dict:
    """{layer: "ok" | error text} for every case in `data_format`."""
    results = {}
    for name, (layer_cls, kwargs, input_shape, output_shape) in CASES.items():
        kwargs = {**kwargs, "data_format": data_format}
        input_shape, output_shape = _layout(input_shape, output_shape, data_format)
        try:
            harness.run_layer_test(
                layer_cls, init_kwargs=kwargs, input_data=_data(input_shape),
                expected_output_shape=output_shape, run_mixed_precision_check=True,
            )
            if keras.backend.backend() == "torch":
                _torch_mixed_forward(layer_cls, kwargs, input_shape)
            results[name] = "ok"
        except Exception:  # reported, the test asserts on it
            results[name] = traceback.format_exc(limit=4)[-2000:]
    return results


def main(output_path: str, *data_formats: str) -> None:
    harness = _Harness()
    results = {data_format: check_layers(harness, data_format) for data_format in data_formats or ("channels_last",)}
    with open(output_path, "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    main(*sys.argv[1:])
