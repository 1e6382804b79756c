"""FOM: the feature optimization module (paper section 1.3.3, eqs. 24-29, Fig. 6)."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.direct_call import DirectConv2D

SIMILARITY_MODES = ("global", "local")


@keras.saving.register_keras_serializable(package="keras_gdfr")
class FOM(keras.layers.Layer):
    """Feature optimization: fuse a high-resolution detail map with a low-resolution one.

    Called on `[F_h, F_l]`:
    - F_l is first projected to F_h's C channels by 1x1 conv + BN when its width
      differs (the paper gives both C channels; the backbone's F_l is wider).
    - F_h* = conv3x3(F_h), F_l* = conv3x3(F_l), both C/2 channels; F_l* is
      up-sampled (bilinear) to H x W.
    - M_sim1 = sigmoid(sum over channels of F_l* . F_h*), one channel (eq. 24).
    - `similarity="global"` (eqs. 25-28, as written): the global mean and max of
      M_sim1 repeated to H x W, stacked, 7x7 conv to one channel, sigmoid ->
      M_sim2. This map is constant apart from a 3-pixel border.
      `similarity="local"` (a documented option, not the paper): the 7x7 conv
      reads M_sim1 itself, so M_sim2 varies per pixel (CBAM-style).
    - F = M_sim2 * Upsample(F_l) + (1 - M_sim2) * F_h (eq. 29).

    Args:
        similarity: `"global"` or `"local"`. Defaults to `"global"`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: a list `[F_h, F_l]`, F_h `(B, H, W, C)`, F_l `(B, h, w, C')`
        with h <= H, w <= W (channels_first: `(B, C, H, W)`, `(B, C', h, w)`).
    Output shape: F_h's shape `(B, H, W, C)`.
    """

    def __init__(self, similarity: str = "global", data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if similarity not in SIMILARITY_MODES:
            raise ValueError(f"similarity must be one of {SIMILARITY_MODES}. Received: similarity={similarity!r}")
        self.similarity = similarity
        self.data_format = U.resolve_data_format(data_format)

    def build(self, input_shape):
        df = self.data_format
        high_shape, low_shape = input_shape
        channels = U.channels_of(high_shape, df)
        self.project = self.project_bn = None
        if U.channels_of(low_shape, df) != channels:
            self.project = DirectConv2D(channels, 1, use_bias=False, data_format=df, dtype=self.dtype_policy, name="project")
            self.project_bn = U.batch_norm(df, "project_bn", self.dtype_policy)
            low_shape = U.build_sublayer(self.project, low_shape)
            U.build_sublayer(self.project_bn, low_shape)
        half = max(1, channels // 2)
        self.conv_high = DirectConv2D(half, 3, padding="same", data_format=df, dtype=self.dtype_policy, name="conv_high")
        self.conv_low = DirectConv2D(half, 3, padding="same", data_format=df, dtype=self.dtype_policy, name="conv_low")
        self.refine = DirectConv2D(1, 7, padding="same", data_format=df, dtype=self.dtype_policy, name="refine")
        U.build_sublayer(self.conv_high, high_shape)
        U.build_sublayer(self.conv_low, low_shape)
        prior_channels = 2 if self.similarity == "global" else 1
        U.build_sublayer(self.refine, U.with_channels(high_shape, prior_channels, df))
        super().build(input_shape)

    def call(self, inputs, training=None):
        f_high, f_low = inputs
        size = U.spatial_size(ops.shape(f_high), self.data_format)
        f_low = self.project_low(f_low, training)
        m_sim2 = ops.sigmoid(self.refine(self._prior(ops.sigmoid(self.similarity_logits(f_high, f_low)))))
        return m_sim2 * self._upsample(f_low, size) + (1.0 - m_sim2) * f_high

    def project_low(self, f_low, training=None):
        """F_l at F_h's width (1x1 conv + BN), or as it is when the widths agree."""
        if self.project is None:
            return f_low
        return self.project_bn(self.project(f_low), training=training)

    def similarity_logits(self, f_high, f_low):
        """Eq. 24 before its sigmoid: sum over channels of Up(conv3x3(F_l)) * conv3x3(F_h), one channel.

        `f_low` already projected (`project_low`)."""
        size = U.spatial_size(ops.shape(f_high), self.data_format)
        low_star = self._upsample(self.conv_low(f_low), size)
        high_star = self.conv_high(f_high)
        return ops.sum(low_star * high_star, axis=U.channel_axis(self.data_format), keepdims=True)

    def _prior(self, m_sim1):
        """The refinement conv's input: eqs. 25-28 (global) or M_sim1 (local)."""
        if self.similarity == "local":
            return m_sim1
        axes = U.spatial_axes(self.data_format)
        zeros = ops.zeros_like(m_sim1)  # repeat(., H, W) of eqs. 27-28 by broadcasting
        f_avg = ops.mean(m_sim1, axis=axes, keepdims=True) + zeros
        f_max = ops.max(m_sim1, axis=axes, keepdims=True) + zeros
        return ops.concatenate([f_avg, f_max], axis=U.channel_axis(self.data_format))

    def _upsample(self, x, size):
        if tuple(U.spatial_size(ops.shape(x), self.data_format)) == tuple(size):
            return x
        return ops.image.resize(x, size, interpolation="bilinear", data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(similarity=self.similarity, data_format=self.data_format)
        return config
