"""FRRB: the feature reconstruction residual block (paper section 1.2.2, eq. 14, Fig. 3b; Table 4)."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers.direct_call import calls_directly
from keras_gdfr.layers.frm import FRM
from keras_gdfr.layers.residual_block import ResidualBlock

FRM_POSITIONS = ("A", "B", "C", "D")


@keras.saving.register_keras_serializable(package="keras_gdfr")
class FRRB(ResidualBlock):
    """A residual block with an FRM: H(x) = M(F(x)) + x (eq. 14), then ReLU.

    `frm_position` places the FRM as in Table 4 (Fig. 11 is not in the text;
    this is the reading documented in docs/architecture.md):
    - `"A"`: on the block's input, before the first conv: F(M(x)) + s(x).
    - `"B"`: after the first conv-BN-ReLU: conv2(M(conv1(x))) + s(x).
    - `"C"`: after the second conv-BN, before the addition: M(F(x)) + s(x)
      (the paper's choice, eq. 14).
    - `"D"`: on the shortcut path: F(x) + M(s(x)).

    Args:
        filters: int. Output channels.
        strides: int. Stride of the first conv and the shortcut. Defaults to `1`.
        frm_position: one of `"A"`-`"D"`. Defaults to `"C"`.
        reduction, upsample, upsample_kernel, downsample: the FRM's arguments
            (see `FRM`).
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: `(B, H, W, C_in)` (channels_last) or `(B, C_in, H, W)`.
    Output shape: `(B, ceil(H/s), ceil(W/s), filters)`, in the same layout.
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        frm_position: str = "C",
        reduction: int = 32,
        upsample: str = "transposed",
        upsample_kernel: int = 4,
        downsample: str = "depthwise",
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(filters, strides=strides, data_format=data_format, **kwargs)
        if frm_position not in FRM_POSITIONS:
            raise ValueError(f"frm_position must be one of {FRM_POSITIONS}. Received: frm_position={frm_position!r}")
        self.frm_position = frm_position
        self.frm_args = dict(
            reduction=reduction, upsample=upsample, upsample_kernel=upsample_kernel, downsample=downsample
        )
        self.frm = FRM(data_format=self.data_format, dtype=self.dtype_policy, name="frm", **self.frm_args)

    def build(self, input_shape):
        super().build(input_shape)
        if self.frm_position == "A":
            frm_shape = input_shape
        elif self.frm_position == "B":
            frm_shape = self.conv1.compute_output_shape(self.conv1_input_shape(input_shape))
        else:
            frm_shape = self.compute_output_shape(input_shape)
        self.frm.build(tuple(frm_shape))

    def call(self, inputs, training=None):
        position = self.frm_position
        x = self.frm_features(inputs, training) if position == "A" else inputs
        y = self.first_conv(x, training)
        if position == "B":
            y = self.frm_features(y, training)
        y = self.second_conv(y, training)
        if position == "C":
            y = self.frm_features(y, training)
        shortcut = self.shortcut_features(inputs, training)
        if position == "D":
            shortcut = self.frm_features(shortcut, training)
        return ops.relu(y + shortcut)

    def frm_features(self, x, training=None):
        """M(x): the block's FRM. On torch its `call` runs directly (`layers.direct_call`): this block's
        `__call__` has already cast, scoped and resolved `training` for it (~100 us a call saved)."""
        if calls_directly(self.frm, x):
            return self.frm.call(x, training=training)
        return self.frm(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(frm_position=self.frm_position, **self.frm_args)
        return config
