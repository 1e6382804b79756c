"""FRM and FOM against independent float64 NumPy references written from the paper.

The references below follow SPEC.md ("FRM", "FOM") and the paper's equations
(FRM eqs. 1-12, FOM eqs. 24-29). They use only NumPy: no Keras op and no code of
`keras_gdfr.layers` is called to compute them. Only the weights are read from
the layers, by name (`layer.weights[i].path`), after being randomised (BatchNorm
moving statistics included), so a weight that is wired to the wrong place, a
transposed kernel, an H/W mix-up or a shifted sampling grid shows up as a
numeric mismatch.

Conventions the references encode (from SPEC.md and PyTorch, the paper's
framework):
- arrays are NHWC; conv kernels have Keras layouts: Conv2D `(kh, kw, Cin, Cout)`,
  DepthwiseConv2D `(kh, kw, C, 1)`, Conv2DTranspose `(kh, kw, Cout, Cin)`;
- a stride-2 3x3 conv pads 1 pixel on *both* sides (PyTorch), not Keras "same";
- the transposed conv (kernel k, stride 2) is the scatter-add
  `out[2 i + a] += x[i] * w[a]`, then the padding p = (k-2)/2 is cropped at the
  start and H x W kept (odd sizes: the one extra row/column is dropped at the end);
- BatchNorm in inference: gamma (x - mean) / sqrt(var + 1e-5) + beta;
- bilinear resize: half-pixel centres (align_corners=False), no antialias,
  source coordinates clamped to the edge (checked against
  `keras.ops.image.resize` in `test_bilinear_helper_matches_keras_resize`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_gdfr.layers.fom import FOM
from keras_gdfr.layers.frm import FRM

ATOL = RTOL = 1e-4
BN_EPS = 1e-5

# Keras 3.15.1, TensorFlow backend: `keras.ops.add(x, b)` with x (N, C, H, W) and
# b (1, C, 1, 1) takes a `tf.nn.bias_add` shortcut and picks data_format "NHWC"
# whenever W == C, so the bias is added along W instead of C. Conv layers add
# their bias that way, so a channels_first conv *with bias* whose output width
# equals its filter count is wrong under TensorFlow (FRM's attn_h when W == C;
# FOM's conv_high / conv_low when W == C/2). Not a bug of keras_gdfr's layers.
TF_BIAS_ADD_BUG = keras.backend.backend() == "tensorflow"
tf_bias_add_xfail = pytest.mark.xfail(
    TF_BIAS_ADD_BUG,
    reason="Keras TF backend ops.add bias_add shortcut picks NHWC when W == C (channels_first bias)",
    strict=True,
)


# --------------------------------------------------------------------------
# NumPy building blocks (float64, NHWC)
# --------------------------------------------------------------------------
def conv2d(x, w, stride=1, pad=0, bias=None, groups=1):
    """Cross-correlation with symmetric zero padding `pad` (PyTorch's grid).

    x: (B, H, W, Cin); w: (kh, kw, Cin // groups, Cout).
    """
    batch, height, width, cin = x.shape
    kh, kw, cin_g, cout = w.shape
    assert cin == cin_g * groups and cout % groups == 0
    cout_g = cout // groups
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out_h = (height + 2 * pad - kh) // stride + 1
    out_w = (width + 2 * pad - kw) // stride + 1
    out = np.zeros((batch, out_h, out_w, groups, cout_g))
    for a in range(kh):
        for b in range(kw):
            patch = xp[:, a : a + stride * (out_h - 1) + 1 : stride, b : b + stride * (out_w - 1) + 1 : stride, :]
            patch = patch.reshape(batch, out_h, out_w, groups, cin_g)
            tap = w[a, b].reshape(cin_g, groups, cout_g)
            out += np.einsum("nhwgi,igo->nhwgo", patch, tap)
    out = out.reshape(batch, out_h, out_w, cout)
    return out if bias is None else out + bias


def depthwise_conv2d(x, w, stride=1, pad=0):
    """Depthwise conv, one filter per channel; w: Keras layout (kh, kw, C, 1)."""
    return conv2d(x, np.transpose(w, (0, 1, 3, 2)), stride=stride, pad=pad, groups=x.shape[-1])


def conv_transpose2d(x, w, stride, pad, out_h, out_w):
    """Transposed conv by its scatter-add definition, then crop `pad` at the start.

    x: (B, h, w, Cin); w: Keras layout (kh, kw, Cout, Cin).
    out_full[s*i + a, s*j + b, o] += x[i, j, c] * w[a, b, o, c]; the PyTorch
    output with padding p is out_full[p : p + out_h, p : p + out_w].
    """
    batch, height, width, _ = x.shape
    kh, kw, cout, _ = w.shape
    full = np.zeros((batch, stride * (height - 1) + kh, stride * (width - 1) + kw, cout))
    for a in range(kh):
        for b in range(kw):
            full[:, a : a + stride * (height - 1) + 1 : stride, b : b + stride * (width - 1) + 1 : stride, :] += (
                np.einsum("nhwc,oc->nhwo", x, w[a, b])
            )
    assert full.shape[1] >= pad + out_h and full.shape[2] >= pad + out_w
    return full[:, pad : pad + out_h, pad : pad + out_w, :]


def batchnorm(x, gamma, beta, mean, var, eps=BN_EPS):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def relu(x):
    return np.maximum(x, 0.0)


def leaky_relu(x, alpha=0.2):
    return np.where(x > 0, x, alpha * x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bilinear_taps(in_size, out_size):
    """Indices and weights of 1-D linear interpolation, half-pixel centres, edge clamp."""
    src = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0.0, in_size - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    return lo, hi, frac


def bilinear_resize(x, out_h, out_w):
    """Bilinear resize of NHWC `x` (align_corners=False, no antialias)."""
    lo, hi, f = _bilinear_taps(x.shape[1], out_h)
    x = x[:, lo] * (1 - f)[None, :, None, None] + x[:, hi] * f[None, :, None, None]
    lo, hi, f = _bilinear_taps(x.shape[2], out_w)
    return x[:, :, lo] * (1 - f)[None, None, :, None] + x[:, :, hi] * f[None, None, :, None]


# --------------------------------------------------------------------------
# Weights: randomise every variable, read back by name
# --------------------------------------------------------------------------
def randomize_weights(layer, rng):
    """Give every variable (BN moving statistics too) a random value."""
    values = []
    for w in layer.weights:
        leaf = w.path.rsplit("/", 1)[-1]
        shape = tuple(w.shape)
        if leaf == "moving_variance":
            v = rng.uniform(0.5, 2.0, shape)
        elif leaf == "gamma":
            v = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("beta", "moving_mean", "bias"):
            v = rng.normal(0.0, 0.3, shape)
        else:  # kernels: roughly unit-variance outputs
            fan_in = int(np.prod(shape[:-1])) if leaf == "kernel" else 1
            v = rng.normal(0.0, 1.0 / np.sqrt(max(1, fan_in)), shape)
        values.append(v.astype("float32"))
    layer.set_weights(values)


def weights_by_name(layer):
    """{'down/kernel': float64 array, ...}: the layer's variables, prefix dropped."""
    out = {}
    for w in layer.weights:
        key = w.path.split("/", 1)[1]
        assert key not in out, key
        out[key] = np.asarray(keras.ops.convert_to_numpy(w), dtype="float64")
    return out


def bn_params(p, name):
    return (p[f"{name}/gamma"], p[f"{name}/beta"], p[f"{name}/moving_mean"], p[f"{name}/moving_variance"])


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


def nhwc_to_nchw(x):
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


# --------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------
def frm_reference(x, p, upsample="transposed", upsample_kernel=4, downsample="depthwise"):
    """FRM, eqs. 1-12: X_out = X1 + X2."""
    _, height, width, _ = x.shape
    # Branch 1 (eqs. 2-5).
    if downsample == "depthwise":
        y = depthwise_conv2d(x, p["down/kernel"], stride=2, pad=1)
    else:
        y = conv2d(x, p["down/kernel"], stride=2, pad=1)
    x_dk = relu(batchnorm(y, *bn_params(p, "down_bn")))  # eq. 2: (H/2, W/2, C)
    x_dc = relu(batchnorm(conv2d(x_dk, p["squeeze/kernel"]), *bn_params(p, "squeeze_bn")))  # eq. 3: C/2
    x_uc = relu(batchnorm(conv2d(x_dc, p["expand/kernel"]), *bn_params(p, "expand_bn")))  # eq. 4: C
    if upsample == "transposed":
        up = conv_transpose2d(x_uc, p["up/kernel"], 2, (upsample_kernel - 2) // 2, height, width)
    else:
        up = bilinear_resize(x_uc, height, width)
    x1 = relu(batchnorm(up, *bn_params(p, "up_bn")))  # eq. 5: (H, W, C)

    # Branches 2-3 (eqs. 6-11), written as the paper orders them: Y = Concat(X_h, X_w).
    x_h = x.mean(axis=1)  # eq. 6: H_Pool, (B, W, C) = (C, 1, W)
    x_w = x.mean(axis=2)  # eq. 7: W_Pool, (B, H, C) = (C, H, 1)
    y = np.concatenate([x_h, x_w], axis=1)  # eq. 8: (B, W + H, C), a 1-wide map
    y = np.einsum("nlc,cm->nlm", y, p["attn_reduce/kernel"][0, 0])  # PWConv to C/r
    y = leaky_relu(batchnorm(y, *bn_params(p, "attn_bn")), 0.2)  # eqs. 9-10
    y_h, y_w = y[:, :width], y[:, width:]
    a_h = sigmoid(np.einsum("nlm,mc->nlc", y_h, p["attn_h/kernel"][0, 0]) + p["attn_h/bias"])  # (B, W, C)
    a_w = sigmoid(np.einsum("nlm,mc->nlc", y_w, p["attn_w/kernel"][0, 0]) + p["attn_w/bias"])  # (B, H, C)
    x2 = x * a_w[:, :, None, :] * a_h[:, None, :, :]  # eq. 11
    return x1 + x2  # eq. 12


def fom_reference(f_high, f_low, p, similarity="global"):
    """FOM, eqs. 24-29 (with SPEC's 1x1 conv + BN projection of F_l when C' != C)."""
    _, height, width, channels = f_high.shape
    if f_low.shape[-1] != channels:
        f_low = batchnorm(conv2d(f_low, p["project/kernel"]), *bn_params(p, "project_bn"))
    high_star = conv2d(f_high, p["conv_high/kernel"], pad=1, bias=p["conv_high/bias"])  # (H, W, C/2)
    low_star = conv2d(f_low, p["conv_low/kernel"], pad=1, bias=p["conv_low/bias"])  # (h, w, C/2)
    low_star = bilinear_resize(low_star, height, width)
    m_sim1 = sigmoid(np.sum(low_star * high_star, axis=-1, keepdims=True))  # eq. 24
    if similarity == "global":
        f_avg = m_sim1.mean(axis=(1, 2), keepdims=True)  # eq. 25
        f_max = m_sim1.max(axis=(1, 2), keepdims=True)  # eq. 26
        ones = np.ones_like(m_sim1)
        prior = np.concatenate([f_avg * ones, f_max * ones], axis=-1)  # eqs. 27-28, (H, W, 2)
    else:
        prior = m_sim1
    m_sim2 = sigmoid(conv2d(prior, p["refine/kernel"], pad=3, bias=p["refine/bias"]))  # 7x7 conv
    return m_sim2 * bilinear_resize(f_low, height, width) + (1.0 - m_sim2) * f_high  # eq. 29


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "in_hw, out_hw",
    [((4, 4), (8, 8)), ((4, 4), (7, 7)), ((3, 5), (6, 10)), ((4, 5), (7, 10)), ((5, 3), (5, 3))],
)
def test_bilinear_helper_matches_keras_resize(in_hw, out_hw):
    x = np.random.default_rng(0).normal(size=(2, *in_hw, 3)).astype("float32")
    got = to_numpy(keras.ops.image.resize(x, out_hw, interpolation="bilinear", data_format="channels_last"))
    np.testing.assert_allclose(got, bilinear_resize(x.astype("float64"), *out_hw), atol=1e-5, rtol=1e-5)


@tf_bias_add_xfail
def test_keras_ops_add_broadcasts_channels_first_bias():
    """The root cause behind `tf_bias_add_xfail`, on its own (no keras_gdfr code)."""
    x = np.zeros((1, 2, 2, 2), "float32")
    bias = np.array([0.0, 1.0], "float32").reshape(1, 2, 1, 1)
    np.testing.assert_array_equal(to_numpy(keras.ops.add(x, bias)), x + bias)


def test_bilinear_helper_hand_values():
    """1-D check by hand: [0, 1] -> 4 samples at src -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)."""
    x = np.array([0.0, 1.0]).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(bilinear_resize(x, 4, 1).ravel(), [0.0, 0.25, 0.75, 1.0])


def test_conv_transpose_helper_shapes_and_scatter():
    """A lone input pixel stamps the kernel at (2i - p, 2j - p) of the output."""
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 2, 0] = 1.0
    w = np.arange(16.0).reshape(4, 4, 1, 1)
    out = conv_transpose2d(x, w, stride=2, pad=1, out_h=6, out_w=6)
    expected = np.zeros((6, 6))
    for a in range(4):
        for b in range(4):
            r, c = 2 * 1 - 1 + a, 2 * 2 - 1 + b
            if 0 <= r < 6 and 0 <= c < 6:
                expected[r, c] = w[a, b, 0, 0]
    np.testing.assert_array_equal(out[0, :, :, 0], expected)


FRM_CASES = [
    # (upsample, upsample_kernel, downsample, (H, W), reduction)
    ("transposed", 4, "depthwise", (8, 8), 4),
    ("transposed", 4, "depthwise", (7, 7), 4),
    ("transposed", 4, "depthwise", (6, 10), 4),
    ("transposed", 4, "dense", (6, 10), 32),  # r = 32: C/r floors to 1 channel
    ("transposed", 2, "depthwise", (7, 10), 4),
    ("transposed", 2, "dense", (8, 8), 4),
    ("transposed", 6, "depthwise", (7, 7), 2),
    ("transposed", 6, "dense", (6, 10), 4),
    ("bilinear", 4, "depthwise", (6, 10), 4),
    ("bilinear", 4, "dense", (7, 7), 4),
]


def _frm_case(upsample, kernel, downsample, hw, reduction, seed, data_format="channels_last"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *hw, 8)).astype("float32")
    layer = FRM(
        reduction=reduction,
        upsample=upsample,
        upsample_kernel=kernel,
        downsample=downsample,
        data_format="channels_last",
    )
    layer.build(x.shape)
    randomize_weights(layer, rng)
    return layer, x


@pytest.mark.parametrize("upsample, kernel, downsample, hw, reduction", FRM_CASES)
def test_frm_matches_numpy_reference(upsample, kernel, downsample, hw, reduction):
    layer, x = _frm_case(upsample, kernel, downsample, hw, reduction, seed=1)
    got = to_numpy(layer(x, training=False))
    want = frm_reference(
        x.astype("float64"), weights_by_name(layer), upsample=upsample, upsample_kernel=kernel, downsample=downsample
    )
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    # The branches are not degenerate: both contribute and ReLUs do not zero X1.
    assert np.abs(want - frm_reference_branch2_only(x.astype("float64"), weights_by_name(layer))).max() > 1e-2


def frm_reference_branch2_only(x, p):
    """X2 alone (used only to check that X1 is not all zero in the tests)."""
    x_h, x_w = x.mean(axis=1), x.mean(axis=2)
    y = np.einsum("nlc,cm->nlm", np.concatenate([x_h, x_w], axis=1), p["attn_reduce/kernel"][0, 0])
    y = leaky_relu(batchnorm(y, *bn_params(p, "attn_bn")), 0.2)
    width = x.shape[2]
    a_h = sigmoid(np.einsum("nlm,mc->nlc", y[:, :width], p["attn_h/kernel"][0, 0]) + p["attn_h/bias"])
    a_w = sigmoid(np.einsum("nlm,mc->nlc", y[:, width:], p["attn_w/kernel"][0, 0]) + p["attn_w/bias"])
    return x * a_w[:, :, None, :] * a_h[:, None, :, :]


@pytest.mark.parametrize(
    "upsample, kernel, downsample, hw, reduction",
    [
        FRM_CASES[2],
        FRM_CASES[4],
        FRM_CASES[7],
        FRM_CASES[8],
        pytest.param(*FRM_CASES[0], marks=tf_bias_add_xfail, id="W-equals-C"),  # attn_h: (B, 8, 1, 8)
    ],
)
def test_frm_channels_first_matches(upsample, kernel, downsample, hw, reduction):
    layer, x = _frm_case(upsample, kernel, downsample, hw, reduction, seed=2)
    want = frm_reference(
        x.astype("float64"), weights_by_name(layer), upsample=upsample, upsample_kernel=kernel, downsample=downsample
    )
    x_cf = nhwc_to_nchw(x)
    layer_cf = FRM(
        reduction=reduction,
        upsample=upsample,
        upsample_kernel=kernel,
        downsample=downsample,
        data_format="channels_first",
    )
    layer_cf.build(x_cf.shape)
    assert [w.path.split("/", 1)[1] for w in layer_cf.weights] == [w.path.split("/", 1)[1] for w in layer.weights]
    layer_cf.set_weights(layer.get_weights())
    got = to_numpy(layer_cf(x_cf, training=False))
    np.testing.assert_allclose(got, nhwc_to_nchw(want), atol=ATOL, rtol=RTOL)


FOM_CASES = [
    # (similarity, (H, W), (h, w), C')
    ("global", (8, 8), (4, 4), 8),
    ("global", (8, 8), (4, 4), 16),
    ("global", (7, 7), (4, 4), 16),
    ("global", (6, 10), (3, 5), 12),
    ("local", (8, 8), (4, 4), 8),
    ("local", (7, 7), (4, 4), 16),
    ("local", (6, 10), (3, 5), 8),
    ("local", (6, 10), (6, 10), 12),  # same size: no up-sampling
]


def _fom_case(similarity, hw, low_hw, low_channels, seed):
    rng = np.random.default_rng(seed)
    f_high = rng.normal(size=(2, *hw, 8)).astype("float32")
    f_low = rng.normal(size=(2, *low_hw, low_channels)).astype("float32")
    layer = FOM(similarity=similarity, data_format="channels_last")
    layer.build([f_high.shape, f_low.shape])
    randomize_weights(layer, rng)
    return layer, f_high, f_low


@pytest.mark.parametrize("similarity, hw, low_hw, low_channels", FOM_CASES)
def test_fom_matches_numpy_reference(similarity, hw, low_hw, low_channels):
    layer, f_high, f_low = _fom_case(similarity, hw, low_hw, low_channels, seed=3)
    params = weights_by_name(layer)
    assert ("project/kernel" in params) == (low_channels != 8)
    got = to_numpy(layer([f_high, f_low], training=False))
    want = fom_reference(f_high.astype("float64"), f_low.astype("float64"), params, similarity=similarity)
    assert got.shape == f_high.shape
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(
    "similarity, hw, low_hw, low_channels",
    [
        FOM_CASES[3],
        FOM_CASES[6],
        # conv_low's output is (B, C/2 = 4, 4, 4): width == filters.
        pytest.param(*FOM_CASES[5], marks=tf_bias_add_xfail, id="w-equals-C/2"),
    ],
)
def test_fom_channels_first_matches(similarity, hw, low_hw, low_channels):
    layer, f_high, f_low = _fom_case(similarity, hw, low_hw, low_channels, seed=4)
    want = fom_reference(f_high.astype("float64"), f_low.astype("float64"), weights_by_name(layer), similarity)
    high_cf, low_cf = nhwc_to_nchw(f_high), nhwc_to_nchw(f_low)
    layer_cf = FOM(similarity=similarity, data_format="channels_first")
    layer_cf.build([high_cf.shape, low_cf.shape])
    layer_cf.set_weights(layer.get_weights())
    got = to_numpy(layer_cf([high_cf, low_cf], training=False))
    np.testing.assert_allclose(got, nhwc_to_nchw(want), atol=ATOL, rtol=RTOL)


def test_fom_global_similarity_is_constant_inside():
    """As SPEC notes, eqs. 25-28 give M_sim2 constant 3+ pixels from the border.

    Checked on the layer: with F_h = 0 and F_l constant per channel at full size,
    F = M_sim2 * F_l, so F / F_l is M_sim2.
    """
    rng = np.random.default_rng(5)
    f_high = np.zeros((1, 10, 12, 8), "float32")
    f_low = np.broadcast_to(rng.uniform(1.0, 2.0, (1, 1, 1, 8)), (1, 10, 12, 8)).astype("float32")
    layer = FOM(similarity="global", data_format="channels_last")
    layer.build([f_high.shape, f_low.shape])
    randomize_weights(layer, rng)
    m_sim2 = to_numpy(layer([f_high, f_low], training=False)) / f_low
    inner = m_sim2[:, 3:-3, 3:-3, :]
    np.testing.assert_allclose(inner, np.full_like(inner, inner[0, 0, 0, 0]), atol=1e-6)
    assert np.ptp(m_sim2) > 1e-4  # the border differs (zero padding of the 7x7 conv)
