"""ImageNormalization: raw 0-255 images in, the training pipeline's normalised images out."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers import _utils as U


@keras.saving.register_keras_serializable(package="keras_gdfr")
class ImageNormalization(keras.layers.Layer):
    """`(x / 255 - mean) / std` per channel, as the training pipeline normalises.

    Put in front of a network trained on normalised images, it lets the model
    take raw 0-255 RGB images (uint8 or float). No weights, so adding or removing
    it leaves the network's weights untouched. Computed in float32 whatever the
    dtype policy, then cast to the compute dtype.

    Args:
        mean: 3 floats, per-channel mean of [0, 1] images (RGB order).
        std: 3 floats, per-channel standard deviation of [0, 1] images.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Input shape: `(B, H, W, 3)` (channels_last) or `(B, 3, H, W)`, values 0-255.
    Output shape: same as the input.

    Example:
    >>> layer = ImageNormalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> keras.ops.convert_to_numpy(layer(keras.ops.full((1, 1, 1, 3), 255.0))).ravel().tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, mean, std, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std must have one value per channel. Received: mean={mean}, std={std}")
        if min(std) <= 0:
            raise ValueError(f"std values must be > 0. Received: std={std}")
        self.mean, self.std = mean, std
        self.data_format = U.resolve_data_format(data_format)

    def call(self, inputs):
        shape = [1, 1, 1, len(self.mean)] if self.data_format == "channels_last" else [1, len(self.mean), 1, 1]
        mean = ops.reshape(ops.convert_to_tensor(self.mean, "float32"), shape)
        std = ops.reshape(ops.convert_to_tensor(self.std, "float32"), shape)
        x = ops.cast(inputs, "float32") / 255.0
        return ops.cast((x - mean) / std, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(mean=list(self.mean), std=list(self.std), data_format=self.data_format)
        return config
