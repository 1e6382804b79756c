"""The branch's down-sampling step (paper section 1.3.4 stage 3): depthwise-separable stride-2 conv."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.direct_call import DirectConv2D, DirectDepthwiseConv2D


@keras.saving.register_keras_serializable(package="keras_gdfr")
class SeparableDown(keras.layers.Layer):
    """3x3 stride-2 depthwise conv (pad 1), BN, ReLU, 1x1 conv to `filters`, BN, ReLU.

    Args:
        filters: int. Output channels.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: `(B, H, W, C)` (channels_last) or `(B, C, H, W)`.
    Output shape: `(B, ceil(H/2), ceil(W/2), filters)`, in the same layout.
    """

    def __init__(self, filters: int, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.data_format = U.resolve_data_format(data_format)

    def build(self, input_shape):
        df = self.data_format
        self.depthwise = DirectDepthwiseConv2D(3, strides=2, use_bias=False, data_format=df, dtype=self.dtype_policy, name="depthwise")
        self.depthwise_bn = U.batch_norm(df, "depthwise_bn", self.dtype_policy)
        self.pointwise = DirectConv2D(self.filters, 1, use_bias=False, data_format=df, dtype=self.dtype_policy, name="pointwise")
        self.pointwise_bn = U.batch_norm(df, "pointwise_bn", self.dtype_policy)
        shape = U.build_sublayer(self.depthwise, U.padded_shape(input_shape, 1, df))
        U.build_sublayer(self.depthwise_bn, shape)
        shape = U.build_sublayer(self.pointwise, shape)
        U.build_sublayer(self.pointwise_bn, shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = U.conv_padded(self.depthwise, inputs, 1, self.data_format)
        x = ops.relu(self.depthwise_bn(x, training=training))
        return ops.relu(self.pointwise_bn(self.pointwise(x), training=training))

    def compute_output_shape(self, input_shape):
        df = self.data_format
        sizes = [U.strided_size(s, 3, 2, 1) for s in U.spatial_size(input_shape, df)]
        return U.with_channels(U.with_spatial(input_shape, *sizes, df), self.filters, df)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, data_format=self.data_format)
        return config
