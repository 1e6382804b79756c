"""The builder's `weights=`: a `.weights.h5`, a `.keras` model, or a preset (name or directory)."""

from __future__ import annotations

import pathlib

import keras

from keras_gdfr.variants import DEFAULTS

FORMS = "a .weights.h5 or .keras file, a preset directory, or a preset name of keras_gdfr.list_presets()"


def load_builder_weights(model: keras.Model, weights, config: dict) -> None:
    """Load `weights` into the builder's flat `model` of architecture `config`; ValueError (one line) otherwise."""
    from keras_gdfr.presets import is_preset_reference

    path = pathlib.Path(weights)
    shown = str(weights)
    if path.is_file():
        if path.name.endswith(".weights.h5"):
            model.load_weights(path)
            return
        if path.suffix != ".keras":
            raise ValueError(f"weights must be {FORMS}. Received: weights={shown!r}")
        # Not keras_gdfr.saving.load_model: that module belongs to training (it registers the
        # optimizer); without compiling only the layers are needed, registered by keras_gdfr.layers.
        source = keras.saving.load_model(path, compile=False)
        _copy_layers(model, {layer.name: layer for layer in source.layers}, shown)
    elif isinstance(weights, str) and is_preset_reference(weights):
        _copy_layers(model, _preset_layers(model, weights, config), shown)
    else:
        raise ValueError(f"weights file {shown} does not exist (weights must be {FORMS}). Received: weights={shown!r}")


def _copy_layers(model: keras.Model, source_layers: dict, shown: str) -> None:
    """Every layer of `model` that has weights takes those of the same-named source layer."""
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in source_layers:
            raise ValueError(f"weights={shown!r} has no layer {layer.name!r}: it is another architecture than this model")
        try:
            layer.set_weights(source_layers[layer.name].get_weights())
        except ValueError as error:
            raise ValueError(f"weights={shown!r}: layer {layer.name!r} does not fit this model ({error})") from None


def _preset_layers(model: keras.Model, preset: str, config: dict) -> dict:
    """{builder layer name: preset layer}: the backbone's by name, the preset's `predictions` as `head`."""
    from keras_gdfr.presets import CONFIG_FILE, TASK_FILE, preset_directory, read_config
    from keras_gdfr.presets.store import head_arrays, load_backbone

    folder = preset_directory(preset)
    saved = read_config(folder, CONFIG_FILE)["config"]
    differ = [key for key in DEFAULTS if _plain(saved.get(key)) != _plain(config[key])]
    if differ:
        shown = ", ".join(f"{key}={_plain(saved.get(key))} there, {_plain(config[key])} here" for key in differ)
        raise ValueError(f"weights={preset!r} is a GDFRNet {saved.get('variant')!r} of another architecture than this model: {shown}")
    head = next((layer for layer in model.layers if layer.name == "head"), None)
    if head is not None:
        if not (folder / TASK_FILE).is_file():
            raise ValueError(f"weights={preset!r} is a backbone preset (no head): build with include_top=False")
        preset_classes = read_config(folder, TASK_FILE)["config"]["num_classes"]
        if preset_classes != head.units:
            raise ValueError(
                f"weights={preset!r} has {preset_classes} classes, this model num_classes={head.units}: "
                f"give num_classes={preset_classes}, or include_top=False for the backbone alone"
            )
    # By Keras's registry: keras_gdfr.models.backbone builds on this module's builder functions.
    backbone_class = keras.saving.get_registered_object("keras_gdfr>GDFRNetBackbone")
    layers = {layer.name: layer for layer in load_backbone(backbone_class, folder).layers}
    if head is not None:
        layers["head"] = _Weights(head_arrays(folder, "predictions"))
    return layers


class _Weights:
    """Stands for a source layer: its weights as arrays."""

    def __init__(self, arrays):
        self.arrays = arrays

    def get_weights(self):
        return self.arrays


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value
