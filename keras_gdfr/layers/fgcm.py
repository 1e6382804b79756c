"""FGCM: the fine-grained feature capture module (paper section 1.3.2, eqs. 15-23, Fig. 5)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.direct_call import DirectConv2D

LAPLACIAN_8 = np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], dtype="float64")


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """The `size` x `size` Gaussian of eq. 16, normalised to sum 1."""
    radius = size // 2
    offsets = np.arange(-radius, radius + 1, dtype="float64")
    grid = offsets[:, None] ** 2 + offsets[None, :] ** 2
    kernel = np.exp(-grid / (2.0 * sigma**2))
    return kernel / kernel.sum()


def log_kernel(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """The fixed Laplacian-of-Gaussian kernel L * G of eq. 22, `(size + 2)` square.

    Applying it once equals applying the Gaussian then the 8-neighbour
    Laplacian (both kernels are symmetric, so convolution and the conv layers'
    cross-correlation agree) everywhere but the outermost one-pixel ring: with
    zero padding, the two-step version's Laplacian sees zeros outside the
    image where the single kernel sees the Gaussian's spill. Its entries sum to
    0, so it answers 0 to a constant input 3 or more pixels from the borders.
    """
    gauss = gaussian_kernel(size, sigma)
    out = np.zeros((size + 2, size + 2))
    for i in range(3):  # full 2-D convolution of the 3x3 Laplacian with G
        for j in range(3):
            out[i : i + size, j : j + size] += LAPLACIAN_8[i, j] * gauss
    return out


@keras.saving.register_keras_serializable(package="keras_gdfr")
class FGCM(keras.layers.Layer):
    """Fine-grained feature capture: fixed LoG per channel, then two 1x1 conv + BN.

    F_h = (L * G) * X (eq. 22), one fixed (non-trainable) 7x7 depthwise kernel
    per channel with zero "same" padding; F_out = BN(Conv1x1(BN(Conv1x1(F_h))))
    (eq. 23; the paper names no activation, so there is none).

    Args:
        gaussian_size: int. Gaussian kernel size. Defaults to `5`.
        sigma: float. Gaussian standard deviation. Defaults to `1.0`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: `(B, H, W, C)` (channels_last) or `(B, C, H, W)`.
    Output shape: same as the input.
    """

    def __init__(self, gaussian_size: int = 5, sigma: float = 1.0, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        # Keras-style argument checks: every layer repeats this shape, with its own arguments.
        if gaussian_size < 1 or gaussian_size % 2 == 0:
            raise ValueError(f"gaussian_size must be a positive odd integer. Received: gaussian_size={gaussian_size}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0. Received: sigma={sigma}")
        self.gaussian_size = int(gaussian_size)
        self.sigma = float(sigma)
        self.data_format = U.resolve_data_format(data_format)

    def build(self, input_shape):
        df = self.data_format
        channels = U.channels_of(input_shape, df)
        kernel = log_kernel(self.gaussian_size, self.sigma)
        tiled = np.tile(kernel[:, :, None, None], (1, 1, channels, 1))
        self.log_kernel = self.add_weight(
            name="log_kernel",
            shape=tiled.shape,
            initializer=keras.initializers.Constant(tiled.astype("float32")),
            trainable=False,
            dtype="float32",
            autocast=False,  # stays float32 under mixed policies: see `detail`
        )
        U.store_in_torch_order(self.log_kernel, U.DEPTHWISE_TORCH_ORDER)  # no copy per call on torch
        self.conv1 = DirectConv2D(channels, 1, use_bias=False, data_format=df, dtype=self.dtype_policy, name="conv1")
        self.bn1 = U.batch_norm(df, "bn1", self.dtype_policy)
        self.conv2 = DirectConv2D(channels, 1, use_bias=False, data_format=df, dtype=self.dtype_policy, name="conv2")
        self.bn2 = U.batch_norm(df, "bn2", self.dtype_policy)
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            U.build_sublayer(layer, input_shape)
        super().build(input_shape)

    def detail(self, inputs):
        """F_h of eq. 22: the fixed LoG response, same shape as `inputs`, in the compute dtype.

        Computed in float32 whatever the policy: the kernel sums to 0 only at float32
        precision (cast to bfloat16 it sums to ~1e-3, so a constant input would answer
        a nonzero "detail").
        """
        x = ops.cast(inputs, "float32")
        y = ops.depthwise_conv(x, self.log_kernel, strides=1, padding="same", data_format=self.data_format)
        return ops.cast(y, self.compute_dtype)

    def call(self, inputs, training=None):
        y = self.bn1(self.conv1(self.detail(inputs)), training=training)
        return self.bn2(self.conv2(y), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(gaussian_size=self.gaussian_size, sigma=self.sigma, data_format=self.data_format)
        return config
