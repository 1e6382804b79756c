"""The network's stem: the 3x3 CIFAR stem or ResNet's 7x7 stem with max-pool (Table 9 net1/net2)."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.direct_call import DirectConv2D

STEM_KINDS = ("3x3", "7x7")


@keras.saving.register_keras_serializable(package="keras_gdfr")
class Stem(keras.layers.Layer):
    """Conv-BN-ReLU stem.

    - `"3x3"`: 3x3 stride-1 conv (pad 1), BN, ReLU; no pooling (32-px inputs, net2).
    - `"7x7"`: 7x7 stride-2 conv (pad 3), BN, ReLU, 3x3 stride-2 max-pool (pad 1):
      ResNet-34's stem (256-px inputs, and net1 on CIFAR).

    Args:
        filters: int. Output channels. Defaults to `64`.
        kind: `"3x3"` or `"7x7"`. Defaults to `"3x3"`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: `(B, H, W, 3)` (channels_last) or `(B, 3, H, W)`.
    Output shape: `(B, H, W, filters)` for 3x3, `(B, ceil(H/4), ceil(W/4), filters)`
        for 7x7 (exactly PyTorch's sizes), in the same layout.
    """

    def __init__(self, filters: int = 64, kind: str = "3x3", data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if kind not in STEM_KINDS:
            raise ValueError(f"kind must be one of {STEM_KINDS}. Received: kind={kind!r}")
        self.filters = int(filters)
        self.kind = kind
        self.data_format = U.resolve_data_format(data_format)

    @property
    def _kernel_stride_pad(self):
        return (3, 1, 1) if self.kind == "3x3" else (7, 2, 3)

    def build(self, input_shape):
        df = self.data_format
        kernel, stride, pad = self._kernel_stride_pad
        # 3x3 stride 1: "same" is PyTorch's symmetric padding, inside the conv (no padded
        # copy); 7x7 stride 2: explicit symmetric padding, then "valid".
        self.conv = DirectConv2D(
            self.filters, kernel, strides=stride, padding="same" if stride == 1 else "valid",
            use_bias=False, data_format=df, dtype=self.dtype_policy, name="conv",
        )
        self.bn = U.batch_norm(df, "bn", self.dtype_policy)
        shape = U.build_sublayer(self.conv, input_shape if stride == 1 else U.padded_shape(input_shape, pad, df))
        U.build_sublayer(self.bn, shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        df = self.data_format
        _, stride, pad = self._kernel_stride_pad
        x = self.conv(inputs) if stride == 1 else U.conv_padded(self.conv, inputs, pad, df)
        x = ops.relu(self.bn(x, training=training))
        if self.kind == "7x7":
            # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU.
            x = ops.max_pool(U.pad_spatial(x, 1, df), 3, strides=2, padding="valid", data_format=df)
        return x

    def compute_output_shape(self, input_shape):
        df = self.data_format
        kernel, stride, pad = self._kernel_stride_pad
        sizes = [U.strided_size(s, kernel, stride, pad) for s in U.spatial_size(input_shape, df)]
        if self.kind == "7x7":
            sizes = [U.strided_size(s, 3, 2, 1) for s in sizes]
        return U.with_channels(U.with_spatial(input_shape, *sizes, df), self.filters, df)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kind=self.kind, data_format=self.data_format)
        return config
