"""FGCM (paper eqs. 15-23) against an independent SciPy/NumPy construction.

The fixed kernel is rebuilt with SciPy only (no code of `keras_gdfr.layers`):
a 5x5 Gaussian, sigma 1.0 (eq. 16), normalised to sum 1, fully convolved with
the 8-neighbour Laplacian L = [[1,1,1],[1,-8,1],[1,1,1]] (eqs. 21-22), giving
one 7x7 LoG kernel per channel. The layer's output is compared with
`scipy.ndimage.convolve` (zero padding) followed by eq. 23,
BN(Conv1x1(BN(Conv1x1(F_h)))) in inference mode, with random weights.

Note on borders: one 7x7 LoG conv with zero padding is what the layer applies
(and what the reference below applies). It equals "Gaussian conv, then
Laplacian conv, each zero-padded" everywhere except the outermost 1-pixel ring
(`test_log_kernel_equals_two_step_inside_one_pixel_border`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import convolve2d
from scipy.signal.windows import gaussian

from keras_gdfr.layers.fgcm import FGCM

ATOL = RTOL = 1e-4
BN_EPS = 1e-5
LAPLACIAN_8 = np.array([[1.0, 1.0, 1.0], [1.0, -8.0, 1.0], [1.0, 1.0, 1.0]])


def scipy_gaussian(size=5, std=1.0):
    g = gaussian(size, std=std)
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def scipy_log_kernel():
    return convolve2d(scipy_gaussian(), LAPLACIAN_8, mode="full")  # (7, 7)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


def log_response(x, kernel):
    """Per-channel 2-D convolution of NHWC `x` with zero padding, output H x W."""
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[-1]):
            out[b, :, :, c] = ndimage.convolve(x[b, :, :, c], kernel, mode="constant", cval=0.0)
    return out


def batchnorm(x, gamma, beta, mean, var):
    return gamma * (x - mean) / np.sqrt(var + BN_EPS) + beta


def fgcm_reference(x, p):
    f_h = log_response(x, scipy_log_kernel())  # eq. 22
    y = np.einsum("nhwc,cd->nhwd", f_h, p["conv1/kernel"][0, 0])
    y = batchnorm(y, p["bn1/gamma"], p["bn1/beta"], p["bn1/moving_mean"], p["bn1/moving_variance"])
    y = np.einsum("nhwc,cd->nhwd", y, p["conv2/kernel"][0, 0])
    return batchnorm(y, p["bn2/gamma"], p["bn2/beta"], p["bn2/moving_mean"], p["bn2/moving_variance"])  # eq. 23


def randomize_trainable(layer, rng):
    """Random values for every variable except the fixed LoG kernel."""
    values = []
    for w, current in zip(layer.weights, layer.get_weights()):
        leaf = w.path.rsplit("/", 1)[-1]
        if leaf == "log_kernel":
            values.append(current)
            continue
        shape = tuple(w.shape)
        if leaf == "moving_variance":
            v = rng.uniform(0.5, 2.0, shape)
        elif leaf == "gamma":
            v = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("beta", "moving_mean"):
            v = rng.normal(0.0, 0.3, shape)
        else:
            v = rng.normal(0.0, 1.0 / np.sqrt(shape[-2]), shape)
        values.append(v.astype("float32"))
    layer.set_weights(values)


def weights_by_name(layer):
    return {
        w.path.split("/", 1)[1]: np.asarray(keras.ops.convert_to_numpy(w), dtype="float64") for w in layer.weights
    }


def nhwc_to_nchw(x):
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def test_scipy_gaussian_is_eq16():
    """The SciPy window equals eq. 16's G(i, j) after normalisation."""
    i = np.arange(-2, 3)
    g16 = np.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / 2.0) / (2 * np.pi)
    np.testing.assert_allclose(scipy_gaussian(), g16 / g16.sum(), rtol=1e-12)


def test_log_kernel_matches_scipy_construction():
    channels = 3
    layer = FGCM(data_format="channels_last")
    layer.build((1, 8, 8, channels))
    kernel = to_numpy(layer.log_kernel)
    assert kernel.shape == (7, 7, channels, 1)
    want = scipy_log_kernel()
    for c in range(channels):
        np.testing.assert_allclose(kernel[:, :, c, 0], want, atol=1e-7, rtol=1e-6)
    assert abs(want.sum()) < 1e-12  # a zero-sum filter: constant input -> 0
    np.testing.assert_allclose(want, want[::-1, ::-1])  # symmetric: conv == cross-correlation


def test_log_kernel_is_fixed():
    layer = FGCM(data_format="channels_last")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    inputs = keras.Input(shape=x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    trainable = [w.path for w in layer.trainable_weights]
    assert layer.log_kernel.path not in trainable
    assert layer.log_kernel.path in [w.path for w in layer.non_trainable_weights]
    assert not layer.log_kernel.trainable

    before_kernel = to_numpy(layer.log_kernel)
    before_conv = to_numpy(layer.conv1.kernel)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model.train_on_batch(x, np.ones_like(x))
    assert np.abs(to_numpy(layer.conv1.kernel) - before_conv).max() > 0  # the step happened
    np.testing.assert_array_equal(to_numpy(layer.log_kernel), before_kernel)


def test_log_response_of_constant_is_zero_inside_nonzero_at_border():
    layer = FGCM(data_format="channels_last")
    x = np.full((1, 12, 11, 2), 3.7, "float32")
    layer.build(x.shape)
    response = to_numpy(layer.detail(x))
    assert response.shape == x.shape
    inner = response[:, 3:-3, 3:-3, :]
    assert np.abs(inner).max() < 1e-5
    ring = np.ones(x.shape[1:3], bool)
    ring[3:-3, 3:-3] = False
    assert np.abs(response[:, ring, :]).min() > 0.1  # every pixel within 3 of the border
    np.testing.assert_allclose(response, log_response(x.astype("float64"), scipy_log_kernel()), atol=1e-5)


def test_log_kernel_equals_two_step_inside_one_pixel_border():
    """One 7x7 zero-padded LoG == G then L (each zero-padded) except on the outer ring."""
    x = np.random.default_rng(1).normal(size=(9, 10))
    one = ndimage.convolve(x, scipy_log_kernel(), mode="constant")
    two = ndimage.convolve(ndimage.convolve(x, scipy_gaussian(), mode="constant"), LAPLACIAN_8, mode="constant")
    np.testing.assert_allclose(one[1:-1, 1:-1], two[1:-1, 1:-1], atol=1e-12)
    ring = np.ones(x.shape, bool)
    ring[1:-1, 1:-1] = False
    assert np.abs(one - two)[ring].max() > 1e-2  # the outer ring differs


@pytest.mark.parametrize("hw", [(8, 8), (7, 7), (6, 10)])
def test_fgcm_matches_numpy_reference(hw):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, *hw, 8)).astype("float32")
    layer = FGCM(data_format="channels_last")
    layer.build(x.shape)
    randomize_trainable(layer, rng)
    got = to_numpy(layer(x, training=False))
    np.testing.assert_allclose(got, fgcm_reference(x.astype("float64"), weights_by_name(layer)), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("hw", [(6, 10), (8, 8)])
def test_fgcm_channels_first_matches(hw):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, *hw, 8)).astype("float32")
    layer = FGCM(data_format="channels_last")
    layer.build(x.shape)
    randomize_trainable(layer, rng)
    want = fgcm_reference(x.astype("float64"), weights_by_name(layer))
    x_cf = nhwc_to_nchw(x)
    layer_cf = FGCM(data_format="channels_first")
    layer_cf.build(x_cf.shape)
    layer_cf.set_weights(layer.get_weights())
    got = to_numpy(layer_cf(x_cf, training=False))
    np.testing.assert_allclose(got, nhwc_to_nchw(want), atol=ATOL, rtol=RTOL)
