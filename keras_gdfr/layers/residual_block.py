"""The plain residual block of ResNet-34 (paper Fig. 3a, eq. 13)."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers import _utils as U


@keras.saving.register_keras_serializable(package="keras_gdfr")
class ResidualBlock(keras.layers.Layer):
    """ResNet basic block: H(x) = ReLU(F(x) + shortcut(x)) (eq. 13).

    F(x) = BN(conv3x3(ReLU(BN(conv3x3_stride(x))))); the shortcut is the identity,
    or a 1x1 stride-s conv + BN where the shape changes. Convolutions pad one
    pixel on every side as in PyTorch, so stride-2 sampling matches the paper's
    framework exactly.

    Args:
        filters: int. Output channels.
        strides: int. Stride of the first conv and the shortcut. Defaults to `1`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: `(B, H, W, C_in)` (channels_last) or `(B, C_in, H, W)`.
    Output shape: `(B, ceil(H/s), ceil(W/s), filters)`, in the same layout.
    """

    def __init__(self, filters: int, strides: int = 1, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"filters must be >= 1. Received: filters={filters}")
        if strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2. Received: strides={strides}")
        self.filters = int(filters)
        self.strides = int(strides)
        self.data_format = U.resolve_data_format(data_format)

    def build(self, input_shape):
        df = self.data_format
        conv_args = dict(use_bias=False, data_format=df)
        self.conv1 = keras.layers.Conv2D(self.filters, 3, strides=self.strides, name="conv1", **conv_args)
        self.bn1 = U.batch_norm(df, "bn1")
        self.conv2 = keras.layers.Conv2D(self.filters, 3, name="conv2", **conv_args)
        self.bn2 = U.batch_norm(df, "bn2")
        shape = U.build_sublayer(self.conv1, U.padded_shape(input_shape, 1, df))
        U.build_sublayer(self.bn1, shape)
        out_shape = U.build_sublayer(self.conv2, U.padded_shape(shape, 1, df))
        U.build_sublayer(self.bn2, out_shape)
        self.shortcut = self.shortcut_bn = None
        if self.strides != 1 or U.channels_of(input_shape, df) != self.filters:
            self.shortcut = keras.layers.Conv2D(self.filters, 1, strides=self.strides, name="shortcut", **conv_args)
            self.shortcut_bn = U.batch_norm(df, "shortcut_bn")
            U.build_sublayer(self.shortcut_bn, U.build_sublayer(self.shortcut, input_shape))
        super().build(input_shape)

    def residual_features(self, inputs, training=None):
        """F(x): the conv branch's output before the addition."""
        y = self.first_conv(inputs, training)
        return self.second_conv(y, training)

    def first_conv(self, x, training=None):
        x = self.conv1(U.pad_spatial(x, 1, self.data_format))
        return ops.relu(self.bn1(x, training=training))

    def second_conv(self, x, training=None):
        return self.bn2(self.conv2(U.pad_spatial(x, 1, self.data_format)), training=training)

    def shortcut_features(self, x, training=None):
        if self.shortcut is None:
            return x
        return self.shortcut_bn(self.shortcut(x), training=training)

    def call(self, inputs, training=None):
        return ops.relu(self.residual_features(inputs, training) + self.shortcut_features(inputs, training))

    def compute_output_shape(self, input_shape):
        df = self.data_format
        height, width = U.spatial_size(input_shape, df)
        shape = U.with_spatial(
            input_shape,
            U.strided_size(height, 3, self.strides, 1),
            U.strided_size(width, 3, self.strides, 1),
            df,
        )
        return U.with_channels(shape, self.filters, df)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides, data_format=self.data_format)
        return config
