"""GDFRNetBackbone: the network from images to its final feature map, a keras-hub style Backbone."""

from __future__ import annotations

import contextlib

import keras

from keras_gdfr.layers import _utils as U
from keras_gdfr.models.gdfrnet import build_features, image_input, normalization_stats, resolve_architecture, set_pyramid_outputs
from keras_gdfr.variants import DEFAULTS


@contextlib.contextmanager
def dtype_policy(dtype):
    """Build under `dtype` (a policy or its name) as the global policy; `None` keeps the global one."""
    if dtype is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras.dtype_policies.get(dtype))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="keras_gdfr")
class GDFRNetBackbone(keras.Model):
    """GDFRNet without its head, as keras-hub's `ResNetBackbone`: a functional model built from its arguments.

    Its output is the final feature map (stage 4, joined with the feature optimization
    branch); `pyramid_outputs` holds every stage's (`{"P0": ..., "P3": ...}` with the 3x3
    stem, P2-P5 with the 7x7 one; see `keras_gdfr.models.pyramid_outputs`). `get_config`
    returns the constructor's arguments with every architecture knob resolved, so
    `keras.saving.load_model` gives a `GDFRNetBackbone` back, `pyramid_outputs` included.

    Args:
        variant: a name of `keras_gdfr.list_variants()`. Defaults to `"gdfrnet"`.
        image_shape: the image shape in the data format; `None` (the default) leaves
            height and width open: any size, 3 channels.
        preprocessing: `None` (the backbone takes normalised images, as the classifier's
            preprocessor gives them) or, for a backbone that takes raw 0-255 images, a
            dataset name or `(mean, std)` (an `ImageNormalization` layer inside).
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        input_tensor: a tensor to use as the image input (keras.applications style).
        dtype: the dtype policy to build in (e.g. `"mixed_float16"`). Defaults to the global one.
        **kwargs: any architecture knob of `keras_gdfr.variants.DEFAULTS` (`widths`,
            `depths`, `frm_position`, ...) over the variant's, and `keras.Model`'s
            `name` and `trainable`.

    Example:
    >>> backbone = GDFRNetBackbone("tiny", widths=(8, 16, 16, 32))
    >>> backbone.output_shape
    (None, None, None, 32)
    >>> sorted(backbone.pyramid_outputs)
    ['P0', 'P1', 'P2', 'P3']
    """

    def __init__(self, variant="gdfrnet", image_shape=None, preprocessing=None, data_format=None,
                 input_tensor=None, dtype=None, **kwargs):
        knobs = {key: kwargs.pop(key) for key in list(kwargs) if key in DEFAULTS}
        architecture = resolve_architecture(variant, knobs)
        stats = normalization_stats(preprocessing)
        data_format = U.resolve_data_format(data_format)
        kwargs.setdefault("name", f"{variant.replace('-', '_')}_backbone")
        with dtype_policy(dtype):
            inputs, x = image_input(image_shape, input_tensor, data_format)
            features = build_features(x, architecture, data_format, stats)
            super().__init__(inputs, features, **kwargs)
        self.variant = variant
        self.architecture = {key: _plain(value) for key, value in architecture.items()}
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.preprocessing = None if stats is None else [list(stats[0]), list(stats[1])]
        self.data_format = data_format
        set_pyramid_outputs(self)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "variant": self.variant,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "preprocessing": self.preprocessing,
            "data_format": self.data_format,
            **self.architecture,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, load_weights: bool = True, file_hash: str | None = None, **kwargs):
        """A backbone from a preset: a shipped name (`keras_gdfr.list_presets()`), a preset
        directory, or the URL of a zipped one (checked against `file_hash`, a sha256).

        `kwargs` override the saved configuration (e.g. `image_shape`, `dtype`, `trainable`).
        """
        from keras_gdfr.presets.store import load_backbone

        return load_backbone(cls, preset, load_weights, file_hash, **kwargs)

    def save_to_preset(self, preset_dir, weights_dtype: str | None = None):
        """Write this backbone as a preset directory (config.json, model.weights.h5, metadata.json).

        `weights_dtype="float16"` stores the weights in half precision (half the size;
        they load into the model's own dtype).
        """
        from keras_gdfr.presets.store import save_backbone_preset

        save_backbone_preset(self, preset_dir, weights_dtype)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
