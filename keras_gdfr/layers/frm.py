"""FRM: the feature reconstruction module (paper section 1.2.1, eqs. 1-12, Fig. 2)."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.direct_call import DirectConv2D, DirectConv2DTranspose, DirectDepthwiseConv2D

UPSAMPLE_MODES = ("transposed", "bilinear")
DOWNSAMPLE_MODES = ("depthwise", "dense")


@keras.saving.register_keras_serializable(package="keras_gdfr")
class FRM(keras.layers.Layer):
    """Feature reconstruction module: X_out = X1 + X2 (eqs. 1, 12).

    Branch 1, reconstruction (eqs. 2-5): 3x3 stride-2 depthwise conv, BN, ReLU;
    1x1 conv to C/2, BN, ReLU; 1x1 conv back to C, BN, ReLU; transposed conv
    (kernel k, stride 2, padding (k-2)/2), BN, ReLU -> X1 with X's spatial size.
    For odd H or W the up-sampled map is one pixel larger and is cropped at the
    end (the paper only uses even sizes; tested for 7x7 maps).

    Branches 2-3, direction-aware attention (eqs. 6-11): X_h = mean over H,
    X_w = mean over W, joined along the spatial axis into (H+W, 1), 1x1 conv to
    C/r, BN, LeakyReLU(0.2), split back, one 1x1 conv + sigmoid per direction:
    X2 = X * A_w * A_h (broadcast).

    Args:
        reduction: int. Channel reduction r of the attention's 1x1 conv
            (C/r channels, at least 1). The text says 4, Table 2 and Fig. 8
            say 32 is best. Defaults to `32`.
        upsample: `"transposed"` (eq. 5) or `"bilinear"` (section 2.2.3).
            Defaults to `"transposed"`.
        upsample_kernel: int. Transposed-conv kernel k of Table 3, even, with
            padding (k-2)/2. Defaults to `4`.
        downsample: `"depthwise"` (the text, eq. 2) or `"dense"` (a full 3x3
            stride-2 conv: the reading that matches Table 8's count).
            Defaults to `"depthwise"`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: `(B, H, W, C)` (channels_last) or `(B, C, H, W)`.
    Output shape: same as the input.

    Example:
    >>> frm = FRM(reduction=4)
    >>> frm(keras.ops.ones((2, 8, 8, 16))).shape
    (2, 8, 8, 16)
    """

    def __init__(
        self,
        reduction: int = 32,
        upsample: str = "transposed",
        upsample_kernel: int = 4,
        downsample: str = "depthwise",
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(reduction) < 1:
            raise ValueError(f"reduction must be >= 1. Received: reduction={reduction}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}. Received: upsample={upsample!r}")
        if upsample_kernel < 2 or upsample_kernel % 2:
            raise ValueError(
                "upsample_kernel must be an even integer >= 2 (padding (k-2)/2). "
                f"Received: upsample_kernel={upsample_kernel}"
            )
        if downsample not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}. Received: downsample={downsample!r}")
        self.reduction = int(reduction)
        self.upsample = upsample
        self.upsample_kernel = int(upsample_kernel)
        self.downsample = downsample
        self.data_format = U.resolve_data_format(data_format)

    def build(self, input_shape):
        df = self.data_format
        channels = U.channels_of(input_shape, df)
        height, width = U.spatial_size(input_shape, df)
        conv_args = dict(use_bias=False, data_format=df, dtype=self.dtype_policy)

        # Branch 1: reconstruction.
        if self.downsample == "depthwise":
            self.down = DirectDepthwiseConv2D(3, strides=2, name="down", **conv_args)
        else:
            self.down = DirectConv2D(channels, 3, strides=2, name="down", **conv_args)
        self.down_bn = U.batch_norm(df, "down_bn", self.dtype_policy)
        self.squeeze = DirectConv2D(max(1, channels // 2), 1, name="squeeze", **conv_args)
        self.squeeze_bn = U.batch_norm(df, "squeeze_bn", self.dtype_policy)
        self.expand = DirectConv2D(channels, 1, name="expand", **conv_args)
        self.expand_bn = U.batch_norm(df, "expand_bn", self.dtype_policy)
        self.up = None
        if self.upsample == "transposed":
            self.up = DirectConv2DTranspose(
                channels, self.upsample_kernel, strides=2, name="up", **conv_args
            )
        self.up_bn = U.batch_norm(df, "up_bn", self.dtype_policy)

        shape = U.build_sublayer(self.down, U.padded_shape(input_shape, 1, df))
        U.build_sublayer(self.down_bn, shape)
        shape = U.build_sublayer(self.squeeze, shape)
        U.build_sublayer(self.squeeze_bn, shape)
        shape = U.build_sublayer(self.expand, shape)
        U.build_sublayer(self.expand_bn, shape)
        if self.up is not None:
            U.build_sublayer(self.up, shape)
        U.build_sublayer(self.up_bn, input_shape)

        # Branches 2-3: direction-aware attention.
        mid = max(1, channels // self.reduction)
        self.attn_reduce = DirectConv2D(mid, 1, name="attn_reduce", **conv_args)
        self.attn_bn = U.batch_norm(df, "attn_bn", self.dtype_policy)
        self.attn_h = DirectConv2D(channels, 1, data_format=df, dtype=self.dtype_policy, name="attn_h")
        self.attn_w = DirectConv2D(channels, 1, data_format=df, dtype=self.dtype_policy, name="attn_w")
        joined = U.with_spatial(input_shape, None if height is None or width is None else height + width, 1, df)
        shape = U.build_sublayer(self.attn_reduce, joined)
        U.build_sublayer(self.attn_bn, shape)
        U.build_sublayer(self.attn_h, U.with_spatial(shape, 1, width, df))
        U.build_sublayer(self.attn_w, U.with_spatial(shape, height, 1, df))
        super().build(input_shape)

    def call(self, inputs, training=None):
        return self.reconstruct(inputs, training) + self.attend(inputs, training)

    def reconstruct(self, x, training=None):
        """Branch 1 (eqs. 2-5): X1, same shape as `x`."""
        df = self.data_format
        height, width = U.spatial_size(ops.shape(x), df)
        y = ops.relu(self.down_bn(U.conv_padded(self.down, x, 1, df), training=training))
        y = ops.relu(self.squeeze_bn(self.squeeze(y), training=training))
        y = ops.relu(self.expand_bn(self.expand(y), training=training))
        if self.up is None:
            y = ops.image.resize(y, (height, width), interpolation="bilinear", data_format=df)
        else:
            y = self._upsample(y, height, width)
        return ops.relu(self.up_bn(y, training=training))

    def _upsample(self, y, height, width):
        """Eq. 5's transposed conv with padding (k-2)/2, as in PyTorch: the full output cropped."""
        crop = (self.upsample_kernel - 2) // 2
        if self.up.runs_torch_op(y):  # PyTorch's padding drops the border inside the op
            return self._crop(self.up.torch_call(y, crop), 0, height, width)
        return self._crop(self.up(y), crop, height, width)

    def attend(self, x, training=None):
        """Branches 2-3 (eqs. 6-11): X2 = X * A_w * A_h."""
        df = self.data_format
        h_axis, w_axis = U.spatial_axes(df)
        height = ops.shape(x)[h_axis]
        x_h = ops.mean(x, axis=h_axis, keepdims=True)  # (1, W): pooled over H
        x_w = ops.mean(x, axis=w_axis, keepdims=True)  # (H, 1): pooled over W
        joined = ops.concatenate([x_w, self._swap_hw(x_h)], axis=h_axis)  # (H+W, 1)
        y = self.attn_bn(self.attn_reduce(joined), training=training)
        y = ops.leaky_relu(y, negative_slope=0.2)
        # Slices, not ops.split: split's sizes become data-dependent on torch, which
        # torch.export (and Keras's torch/ONNX export) cannot trace.
        y_w, y_h = self._split_hw(y, height)
        a_w = ops.sigmoid(self.attn_w(y_w))  # (H, 1)
        a_h = ops.sigmoid(self.attn_h(self._swap_hw(y_h)))  # (1, W)
        return x * a_w * a_h

    def _split_hw(self, y, height):
        """(the first `height` rows, the rest) along the height axis."""
        if self.data_format == "channels_last":
            return y[:, :height], y[:, height:]
        return y[:, :, :height], y[:, :, height:]

    def _swap_hw(self, x):
        if self.data_format == "channels_last":
            return ops.transpose(x, (0, 2, 1, 3))
        return ops.transpose(x, (0, 1, 3, 2))

    def _crop(self, y, start, height, width):
        """Drop the transposed conv's padding and any extra row/column (odd sizes)."""
        if self.data_format == "channels_last":
            return y[:, start : start + height, start : start + width, :]
        return y[:, :, start : start + height, start : start + width]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            reduction=self.reduction,
            upsample=self.upsample,
            upsample_kernel=self.upsample_kernel,
            downsample=self.downsample,
            data_format=self.data_format,
        )
        return config
