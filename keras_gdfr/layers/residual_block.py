"""The plain residual block of ResNet-34 (paper Fig. 3a, eq. 13)."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.direct_call import DirectConv2D


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
        conv_args = dict(use_bias=False, data_format=df, dtype=self.dtype_policy)
        # Stride 1: "same" is PyTorch's symmetric 1-pixel padding, done inside the conv
        # (no padded copy). Stride 2: explicit symmetric padding, then "valid" (see
        # `U.pad_spatial`: Keras's "same" would pad only at the end).
        conv1_padding = "same" if self.strides == 1 else "valid"
        self.conv1 = DirectConv2D(
            self.filters, 3, strides=self.strides, padding=conv1_padding, name="conv1", **conv_args
        )
        self.bn1 = U.batch_norm(df, "bn1", self.dtype_policy)
        self.conv2 = DirectConv2D(self.filters, 3, padding="same", name="conv2", **conv_args)
        self.bn2 = U.batch_norm(df, "bn2", self.dtype_policy)
        shape = U.build_sublayer(self.conv1, self.conv1_input_shape(input_shape))
        U.build_sublayer(self.bn1, shape)
        out_shape = U.build_sublayer(self.conv2, shape)
        U.build_sublayer(self.bn2, out_shape)
        self.shortcut = self.shortcut_bn = None
        if self.strides != 1 or U.channels_of(input_shape, df) != self.filters:
            # A 1x1 stride-s conv is a 1x1 conv of every s-th pixel: the stride is taken by
            # slicing (same weights, same result). PyTorch 2.13's CPU (oneDNN) backward of
            # a strided 1x1 conv on channels_last memory crashes (SIGSEGV) for odd batch
            # sizes, and Keras's channels_last convs on torch use that memory format.
            self.shortcut = DirectConv2D(self.filters, 1, name="shortcut", **conv_args)
            self.shortcut_bn = U.batch_norm(df, "shortcut_bn", self.dtype_policy)
            shape = U.build_sublayer(self.shortcut, self._subsampled_shape(input_shape))
            U.build_sublayer(self.shortcut_bn, shape)
        super().build(input_shape)

    def residual_features(self, inputs, training=None):
        """F(x): the conv branch's output before the addition."""
        y = self.first_conv(inputs, training)
        return self.second_conv(y, training)

    def conv1_input_shape(self, input_shape) -> tuple:
        """The shape `conv1` sees: padded explicitly only when it strides."""
        if self.strides == 1:
            return tuple(input_shape)
        return U.padded_shape(input_shape, 1, self.data_format)

    def first_conv(self, x, training=None):
        y = self.conv1(x) if self.strides == 1 else U.conv_padded(self.conv1, x, 1, self.data_format)
        return ops.relu(self.bn1(y, training=training))

    def second_conv(self, x, training=None):
        return self.bn2(self.conv2(x), training=training)

    def shortcut_features(self, x, training=None):
        if self.shortcut is None:
            return x
        if self.strides != 1:  # every s-th pixel: see build()
            s = self.strides
            x = x[:, ::s, ::s, :] if self.data_format == "channels_last" else x[:, :, ::s, ::s]
        return self.shortcut_bn(self.shortcut(x), training=training)

    def _subsampled_shape(self, input_shape) -> tuple:
        """`input_shape` after taking every `strides`-th pixel (ceil(H/s) x ceil(W/s))."""
        if self.strides == 1:
            return tuple(input_shape)
        height, width = U.spatial_size(input_shape, self.data_format)
        size = lambda n: None if n is None else -(-n // self.strides)  # noqa: E731
        return U.with_spatial(input_shape, size(height), size(width), self.data_format)

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
