"""The classifier's preprocessing, as keras-hub structures it: an image converter inside a preprocessor."""

from __future__ import annotations

import keras

from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.preprocessing import ImageNormalization


@keras.saving.register_keras_serializable(package="keras_gdfr")
class GDFRNetImageConverter(keras.layers.Layer):
    """Raw 0-255 RGB images of any size to the network's input: resize, then the dataset's normalisation.

    As keras-hub's `ImageConverter`: a `keras.layers.Resizing` (bilinear, cropping to
    the aspect ratio) to `image_size`, then `(x / 255 - mean) / std` (the training
    pipeline's normalisation, `ImageNormalization`). `image_size=None` skips the resize,
    `mean=None` the normalisation. No weights.

    Args:
        image_size: `(height, width)` or `None`.
        mean, std: 3 floats each (of [0, 1] images), or `None`.
        crop_to_aspect_ratio: crop the centre to the target aspect ratio before
            resizing (keras-hub's default). Defaults to `True`.
        interpolation: `keras.layers.Resizing`'s. Defaults to `"bilinear"`.
        data_format: Defaults to `keras.config.image_data_format()`.
    """

    def __init__(self, image_size=None, mean=None, std=None, crop_to_aspect_ratio=True, interpolation="bilinear",
                 data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        self.data_format = U.resolve_data_format(data_format)
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.interpolation = interpolation
        self.resizing = None
        if self.image_size is not None:
            self.resizing = keras.layers.Resizing(
                *self.image_size, interpolation=interpolation, crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                data_format=self.data_format, name="resizing",
            )
        self.normalization = None if mean is None else ImageNormalization(mean, std, data_format=self.data_format, name="normalization")
        self.built = True

    def build(self, input_shape=None):
        for layer in (self.resizing, self.normalization):
            if layer is not None:
                layer.build(input_shape)
        self.built = True

    def call(self, images):
        x = keras.ops.cast(images, "float32")
        if self.resizing is not None:
            x = self.resizing(x)
        if self.normalization is not None:
            x = self.normalization(x)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.image_size is not None:
            axes = (-3, -2) if self.data_format == "channels_last" else (-2, -1)
            shape[axes[0]], shape[axes[1]] = self.image_size
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=None if self.image_size is None else list(self.image_size),
            mean=None if self.normalization is None else self.normalization.mean,
            std=None if self.normalization is None else self.normalization.std,
            crop_to_aspect_ratio=self.crop_to_aspect_ratio,
            interpolation=self.interpolation,
            data_format=self.data_format,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_gdfr")
class GDFRNetImageClassifierPreprocessor(keras.layers.Layer):
    """keras-hub's `ImageClassifierPreprocessor` for GDFRNet: `(x, y, sample_weight)` in, `x` converted.

    Calls its `image_converter` on `x` and passes `y` and `sample_weight` through, so it
    maps over a `tf.data` dataset (`ds.map(preprocessor)`) as keras-hub's does. Given to
    `GDFRNetImageClassifier`, it runs inside the classifier's graph (on every backend; no
    tf.data needed), so the classifier takes raw 0-255 images of any size.

    Example:
    >>> converter = GDFRNetImageConverter(image_size=(32, 32), mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    >>> preprocessor = GDFRNetImageClassifierPreprocessor(converter)
    >>> x, y = preprocessor(np.zeros((2, 40, 40, 3)), np.array([0, 1]))
    >>> tuple(x.shape)
    (2, 32, 32, 3)
    """

    def __init__(self, image_converter=None, **kwargs):
        super().__init__(**kwargs)
        self.image_converter = image_converter
        self.built = True

    def call(self, x, y=None, sample_weight=None):
        if self.image_converter is not None:
            x = self.image_converter(x)
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def compute_output_shape(self, input_shape):
        return input_shape if self.image_converter is None else self.image_converter.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config["image_converter"] = keras.layers.serialize(self.image_converter) if self.image_converter else None
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("image_converter"), dict):
            config["image_converter"] = keras.layers.deserialize(config["image_converter"])
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, file_hash: str | None = None, **kwargs):
        """The preset's preprocessor (its preprocessor.json); see `GDFRNetBackbone.from_preset`."""
        from keras_gdfr.presets.store import load_preprocessor

        return load_preprocessor(cls, preset, file_hash, **kwargs)

    def save_to_preset(self, preset_dir):
        from keras_gdfr.presets import PREPROCESSOR_FILE
        from keras_gdfr.presets.store import write_config

        write_config(self, preset_dir, PREPROCESSOR_FILE)
