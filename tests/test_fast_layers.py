"""The layers' speed paths keep their results: fused BatchNorm, in-conv padding, sliced shortcut stride.

- `keras_gdfr.layers.batch_norm.BatchNorm` equals `keras.layers.BatchNormalization`
  (fused torch path included): same outputs in training and inference, same
  moving-statistics updates (Keras's rule, biased batch variance), same gradients
  (torch), same variables and saved weights, in both channel positions and for
  half-precision inputs. On tensorflow and jax it runs Keras's own code.
- Called by our modules on torch, BatchNorm and the conv layers skip Keras's `Layer.__call__`
  (`layers.direct_call`): a GDFRNet trains bit for bit as through `__call__`; and each conv run as
  PyTorch's own op (symmetric padding and transposed-conv cropping inside the op) gives Keras's
  op's output and input gradient bit for bit on the same input (kernel gradients and biased
  convs to float32 rounding), in both data formats.
- A GDFRNet saved before these changes (Keras BatchNorm) loads unchanged.
- The residual block's stride-2 shortcut (a 1x1 conv of every 2nd pixel) trains
  on torch with odd batch sizes in channels_last (PyTorch 2.13's CPU backward of a
  strided 1x1 conv on channels_last memory crashes there).
The numerics of the blocks against NumPy references are in test_layers_reference.py,
test_fgcm.py and test_backends.py.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_gdfr.layers import batch_norm as B

TORCH = keras.backend.backend() == "torch"
CASES = [(-1, (6, 5, 4, 7)), (1, (6, 7, 5, 4)), (-1, (9, 3)), (3, (2, 3, 3, 4))]


def _pair(axis, shape, rng, momentum=0.9):
    fused = B.BatchNorm(axis=axis, momentum=momentum, epsilon=1e-5)
    reference = keras.layers.BatchNormalization(axis=axis, momentum=momentum, epsilon=1e-5)
    fused.build(shape)
    reference.build(shape)
    for mine, theirs in zip(fused.weights, reference.weights):
        assert mine.path.split("/")[-1] == theirs.path.split("/")[-1]
        value = rng.uniform(0.5, 1.5, mine.shape).astype("float32")
        mine.assign(value)
        theirs.assign(value)
    return fused, reference


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("axis,shape", CASES)
def test_training_and_inference_match_keras(axis, shape):
    rng = np.random.default_rng(0)
    fused, reference = _pair(axis, shape, rng)
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    for _ in range(2):  # two updates of the moving statistics
        np.testing.assert_allclose(_numpy(fused(x, training=True)), _numpy(reference(x, training=True)),
                                   rtol=1e-5, atol=2e-5)
    for mine, theirs in zip(fused.weights, reference.weights):
        np.testing.assert_allclose(_numpy(mine), _numpy(theirs), rtol=1e-6, atol=1e-6, err_msg=mine.path)
    np.testing.assert_allclose(_numpy(fused(x, training=False)), _numpy(reference(x, training=False)),
                               rtol=1e-5, atol=2e-5)


def test_frozen_layer_uses_moving_statistics():
    rng = np.random.default_rng(1)
    fused, reference = _pair(-1, (4, 3, 3, 5), rng)
    fused.trainable = reference.trainable = False
    x = rng.normal(size=(4, 3, 3, 5)).astype("float32")
    before = _numpy(fused.moving_mean)
    np.testing.assert_allclose(_numpy(fused(x, training=True)), _numpy(reference(x, training=True)), atol=1e-5)
    np.testing.assert_array_equal(_numpy(fused.moving_mean), before)


@pytest.mark.skipif(not TORCH, reason="gradients through the fused kernel: torch only")
@pytest.mark.parametrize("axis,shape", CASES[:3])
def test_gradients_match_keras(axis, shape):
    import torch

    rng = np.random.default_rng(2)
    fused, reference = _pair(axis, shape, rng)
    x = rng.normal(1.0, 2.0, shape).astype("float32")
    weights = torch.as_tensor(rng.normal(size=shape).astype("float32"))
    grads = []
    for layer in (fused, reference):
        inputs = torch.tensor(x, requires_grad=True)
        (layer(inputs, training=True) * weights).sum().backward()
        grads.append([inputs.grad.numpy(), layer.gamma.value.grad.numpy(), layer.beta.value.grad.numpy()])
    for mine, theirs in zip(*grads):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_inputs_compute_in_float32_like_keras(dtype):
    rng = np.random.default_rng(3)
    shape = (8, 4, 4, 6)
    fused = B.BatchNorm(axis=-1, momentum=0.9, epsilon=1e-5, dtype=f"mixed_{dtype}")
    reference = keras.layers.BatchNormalization(axis=-1, momentum=0.9, epsilon=1e-5, dtype=f"mixed_{dtype}")
    fused.build(shape)
    reference.build(shape)
    x = keras.ops.cast(rng.normal(size=shape).astype("float32"), dtype)
    out, expected = fused(x, training=True), reference(x, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    np.testing.assert_allclose(_numpy(keras.ops.cast(out, "float32")), _numpy(keras.ops.cast(expected, "float32")),
                               atol=2e-2)
    np.testing.assert_allclose(_numpy(fused.moving_variance), _numpy(reference.moving_variance), rtol=1e-5)


def test_reference_switch_runs_keras_code(monkeypatch):
    monkeypatch.setattr(B, "FUSED_TORCH", False)
    rng = np.random.default_rng(4)
    fused, reference = _pair(-1, (5, 4), rng)
    x = rng.normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(_numpy(fused(x, training=True)), _numpy(reference(x, training=True)), atol=1e-6)


def test_gdfrnet_weights_saved_with_keras_batchnorm_load(tmp_path, monkeypatch):
    """A GDFRNet saved when its layers used Keras's BatchNormalization loads unchanged (checkpoint compatibility).

    The BatchNorms are sublayers held by attribute (`self.bn1`), so their saved
    paths are the attribute names, not the class names.
    """
    from keras_gdfr.layers import _utils as U
    from keras_gdfr.models import GDFRNet

    rng = np.random.default_rng(5)
    with monkeypatch.context() as patch:
        patch.setattr(U, "BatchNorm", keras.layers.BatchNormalization)
        theirs = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=3, data_format="channels_last")
    assert not any(isinstance(layer, B.BatchNorm) for layer in theirs._flatten_layers())
    for weight in theirs.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    theirs.save_weights(tmp_path / "model.weights.h5")
    mine = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=3, data_format="channels_last")
    assert any(isinstance(layer, B.BatchNorm) for layer in mine._flatten_layers())
    assert [(w.path, tuple(w.shape)) for w in mine.weights] == [(w.path, tuple(w.shape)) for w in theirs.weights]
    mine.load_weights(tmp_path / "model.weights.h5")
    for a, b in zip(mine.weights, theirs.weights):
        np.testing.assert_array_equal(_numpy(a), _numpy(b))
    x = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(_numpy(mine(x, training=False)), _numpy(theirs(x, training=False)), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not TORCH, reason="the direct call is the torch path")
def test_direct_calls_train_a_gdfrnet_exactly_as_keras_calls(monkeypatch):
    """Called by our modules on torch, BatchNorm and the conv layers skip Keras's `Layer.__call__`
    (`layers.direct_call`): train steps and a prediction give the same weights, moving statistics and
    outputs, bit for bit, as with every sublayer called through `__call__`."""
    from keras_gdfr import GDFRNet
    from keras_gdfr.layers import FRM, direct_call
    from keras_gdfr.training.optimizer import TorchSGD, compile_for_training

    wrapped = {"count": 0}
    layer_call = keras.layers.Layer.__call__

    def counting_layer_call(self, *args, **kwargs):  # sublayers that went through Keras's __call__
        wrapped["count"] += isinstance(self, (B.BatchNorm, direct_call.DirectCall, FRM))
        return layer_call(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__call__", counting_layer_call)

    monkeypatch.setattr(direct_call, "FUNCTIONAL", False)  # Keras's `call`: PyTorch's ops are the next test's

    def train(direct: bool):
        monkeypatch.setattr(direct_call, "DIRECT", direct)
        keras.utils.set_random_seed(0)
        model = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=10, widths=(8, 8, 16, 16))
        compile_for_training(model, TorchSGD(0.1), jit_compile=False)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((6, 16, 16, 3)).astype("float32")
        y = np.eye(10, dtype="float32")[rng.integers(0, 10, 6)]
        model.train_on_batch(x, y)  # the first step also infers shapes on `meta` tensors, through __call__
        wrapped["count"] = 0
        for _ in range(2):
            model.train_on_batch(x, y)
        return wrapped["count"], [keras.ops.convert_to_numpy(w) for w in model.weights] + [model.predict(x, verbose=0)]

    direct_calls, direct = train(direct=True)
    reference_calls, reference = train(direct=False)
    assert direct_calls == 0 and reference_calls > 100  # 2 steps x (43 BatchNorms + 56 convs + 4 FRMs) through __call__
    assert len(direct) == len(reference)
    for mine, theirs in zip(direct, reference):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.skipif(not TORCH, reason="PyTorch's conv ops are the torch path")
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_every_conv_run_as_a_torch_op_equals_keras_op(monkeypatch, data_format):
    """Every conv of a GDFRNet forward in training runs as PyTorch's op (`torch_call`), and on the
    input it got, its output and input gradient equal Keras's op bit for bit (kernel gradients, and
    convs with a bias, which PyTorch adds inside the op, to float32 rounding):
    `call` for "same"/"valid", `call` of the explicitly padded input where the op padded itself
    (stride 2), Keras's transposed conv cropped by (k - 2) / 2 where PyTorch cropped inside.
    An odd size (15 px) makes the transposed convs crop an extra row and column."""
    import torch

    from keras_gdfr import GDFRNet
    from keras_gdfr.layers import _utils as U
    from keras_gdfr.layers import direct_call as D

    calls = []
    torch_calls = {cls: cls.torch_call for cls in (D.DirectCall, D.DirectConv2DTranspose)}
    for cls, torch_call in torch_calls.items():
        def recording(self, x, padding, _torch_call=torch_call):
            calls.append((self, x.detach().clone(), padding))
            return _torch_call(self, x, padding)
        monkeypatch.setattr(cls, "torch_call", recording)
    keras.utils.set_random_seed(0)
    shape = (15, 15, 3) if data_format == "channels_last" else (3, 15, 15)
    model = GDFRNet("tiny", input_shape=shape, num_classes=10, widths=(8, 8, 16, 16), data_format=data_format)
    model(np.random.default_rng(0).standard_normal((3,) + shape).astype("float32"), training=True)
    for cls, torch_call in torch_calls.items():
        monkeypatch.setattr(cls, "torch_call", torch_call)
    n_convs = sum(isinstance(layer, D.DirectCall) for layer in model._flatten_layers())
    assert n_convs > 50 and len(calls) == n_convs  # every conv, once

    def crop(y, start, like):
        h, w = U.spatial_size(like.shape, data_format)
        return y[:, start:start + h, start:start + w] if data_format == "channels_last" else y[..., start:start + h, start:start + w]

    def keras_op(layer, x, padding):
        if isinstance(layer, D.DirectConv2DTranspose):
            return lambda x: crop(layer.call(x), padding, layer.torch_call(x, padding))
        if padding != layer._same_padding():
            return lambda x: layer.call(U.pad_spatial(x, padding, data_format))
        return layer.call

    padded = cropped = biased = 0
    for layer, x, padding in calls:
        results = []
        for op in (lambda x: layer.torch_call(x, padding), keras_op(layer, x, padding)):
            x_in = x.clone().requires_grad_(True)
            y = op(x_in)
            cotangent = torch.linspace(-1.0, 1.0, y.numel()).reshape(y.shape)
            kernel_grad, input_grad = torch.autograd.grad((y * cotangent).sum(), [layer.kernel.value, x_in])
            results.append((y.detach(), input_grad, kernel_grad))
        (y, input_grad, kernel_grad), (keras_y, keras_input_grad, keras_kernel_grad) = results
        if layer.use_bias:  # added inside PyTorch's op, after the conv in Keras's: float32 rounding apart
            torch.testing.assert_close(y, keras_y, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(input_grad, keras_input_grad, rtol=1e-6, atol=1e-6)
            biased += 1
        else:
            assert torch.equal(y, keras_y) and torch.equal(input_grad, keras_input_grad), (layer.path, padding)
        # The kernel gradient sums the same products, in PyTorch's order for its own padding: equal, or (the
        # depthwise stride-2 conv on stage 4's 2x2 map) one float32 rounding apart.
        torch.testing.assert_close(kernel_grad, keras_kernel_grad, rtol=0, atol=1e-6 * float(keras_kernel_grad.abs().max()))
        if isinstance(layer, D.DirectConv2DTranspose):
            assert padding == (layer.kernel_size[0] - 2) // 2  # Table 3's padding (k - 2) / 2
            cropped += 1
        elif padding != layer._same_padding():
            assert padding == layer.kernel_size[0] // 2 and layer.strides == (2, 2)  # PyTorch's symmetric padding
            padded += 1
    # Among them: the stride-2 convs (3 blocks, 4 FRMs, 3 branch steps) and every FRM's transposed conv.
    assert biased == sum(isinstance(layer, D.DirectCall) and layer.use_bias for layer in model._flatten_layers()) > 0
    assert padded == 10 and cropped == sum(isinstance(layer, D.DirectConv2DTranspose) for layer in model._flatten_layers()) == 4


@pytest.mark.skipif(not TORCH, reason="the direct path is torch's")
def test_a_sublayer_called_on_its_own_gets_what_keras_call_sets_up():
    """The direct path skips `Layer.__call__` only where a parent module has already done its work:
    called on its own under mixed_bfloat16 with float32 inputs, a conv casts (to bfloat16) exactly as
    Keras's layer does; inside an autocast scope, on bfloat16 inputs, it runs directly. A transposed
    conv with a kernel smaller than its stride (Keras pads its "valid" output) keeps Keras's op."""
    import torch
    from keras.src.backend.common.variables import AutocastScope

    from keras_gdfr.layers import direct_call as D

    policy = keras.mixed_precision.DTypePolicy("mixed_bfloat16")
    mine = D.DirectConv2D(4, 3, padding="same", use_bias=False, dtype=policy)
    theirs = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, dtype=policy)
    for layer in (mine, theirs):
        layer.build((2, 8, 8, 3))
    theirs.kernel.assign(mine.kernel.value.detach())
    x = torch.tensor(np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32"))
    assert not D.calls_directly(mine, x)
    y = mine(x)
    assert y.dtype == torch.bfloat16 and torch.equal(y, theirs(x))
    with AutocastScope("bfloat16"):
        assert D.calls_directly(mine, x.to(torch.bfloat16))

    for cls in (D.DirectConv2DTranspose, keras.layers.Conv2DTranspose):
        up = cls(4, 1, strides=2, data_format="channels_first")
        up.build((2, 3, 5, 5))
        assert tuple(up(torch.zeros(2, 3, 5, 5)).shape) == (2, 4, 10, 10)  # not PyTorch's natural 9 x 9


def test_config_round_trip():
    layer = B.BatchNorm(axis=1, momentum=0.9, epsilon=1e-5, name="bn")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is B.BatchNorm
    assert clone.get_config() == layer.get_config()


_ODD_BATCHES = """
import keras, numpy as np
from keras_gdfr.layers import ResidualBlock
block = ResidualBlock(16, strides=2, data_format="channels_last")
for batch in (3, 5):
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(batch, 9, 9, 8)).astype("float32"))
    x.requires_grad_(True)
    y = block(x, training=True)
    y.sum().backward()
    print(tuple(y.shape), float(x.grad.abs().sum()) > 0)
"""


@pytest.mark.skipif(not TORCH, reason="the crash this guards against is PyTorch's")
def test_strided_shortcut_trains_with_odd_batches_channels_last():
    """In a subprocess: the PyTorch bug this avoids is a segmentation fault, not an exception."""
    repo = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-c", _ODD_BATCHES], env=env, cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["(3, 5, 5, 16) True", "(5, 5, 5, 16) True"]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_sliced_shortcut_equals_strided_conv(data_format):
    """The shortcut's stride by slicing equals a stride-2 1x1 conv with the same kernel (odd sizes too)."""
    from keras_gdfr.layers import ResidualBlock

    rng = np.random.default_rng(6)
    shape = (2, 7, 9, 4) if data_format == "channels_last" else (2, 4, 7, 9)
    block = ResidualBlock(6, strides=2, data_format=data_format)
    block.build(shape)
    x = rng.normal(size=shape).astype("float32")
    got = _numpy(block.shortcut(x[:, ::2, ::2, :] if data_format == "channels_last" else x[:, :, ::2, ::2]))
    want = _numpy(keras.ops.conv(x, block.shortcut.kernel, strides=2, padding="valid", data_format=data_format))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert block.compute_output_shape(shape) == tuple(_numpy(block(x, training=False)).shape)
