"""Writing and reading preset directories (the layout is in `keras_gdfr.presets`)."""

from __future__ import annotations

import datetime
import json
import pathlib

import keras

from keras_gdfr.presets import (
    BACKBONE_WEIGHTS_FILE,
    CHECKED_FILES,
    CONFIG_FILE,
    METADATA_FILE,
    PREPROCESSOR_FILE,
    TASK_FILE,
    TASK_WEIGHTS_FILE,
    PresetError,
    preset_directory,
    read_config,
    read_metadata,
    sha256,
)

# Set to None in a preset's configs, so that it loads under the user's data format and
# dtype policy (the weights are the same in both formats; they are cast on loading).
PORTABLE_KEYS = ("data_format", "dtype", "head_dtype")
WEIGHTS_DTYPES = ("float32", "float16")


# --------------------------------------------------------------------------- writing


def _portable(config):
    if isinstance(config, dict):
        return {key: None if key in PORTABLE_KEYS else _portable(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_portable(value) for value in config]
    return config


def write_config(obj, preset_dir, file_name: str) -> None:
    """Write Keras's serialisation of `obj` (no build or compile state) to preset_dir/file_name."""
    folder = pathlib.Path(preset_dir)
    folder.mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(obj)
    config = _without(config, ("build_config", "compile_config"))
    (folder / file_name).write_text(json.dumps(_portable(config), indent=2))


def _without(config, keys):
    if isinstance(config, dict):
        return {key: _without(value, keys) for key, value in config.items() if key not in keys}
    if isinstance(config, list):
        return [_without(value, keys) for value in config]
    return config


def _check_weights_dtype(weights_dtype) -> None:
    if weights_dtype not in (None, *WEIGHTS_DTYPES):
        raise ValueError(f"weights_dtype must be None or one of {WEIGHTS_DTYPES}. Received: weights_dtype={weights_dtype!r}")


def _cast_floats(path: pathlib.Path, weights_dtype: str | None) -> None:
    """Store every floating-point array of an .h5 file as `weights_dtype` (loading casts them back).

    Written to a new file (HDF5 does not give back the space of deleted arrays), then renamed over.
    """
    import h5py

    if weights_dtype in (None, "float32"):
        return
    cast = path.with_name(path.name + ".cast")
    with h5py.File(path, "r") as source, h5py.File(cast, "w") as target:
        target.attrs.update(source.attrs)

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                target.require_group(name).attrs.update(obj.attrs)
                return
            values = obj[()]
            target[name] = values.astype(weights_dtype) if obj.dtype.kind == "f" else values
            target[name].attrs.update(obj.attrs)

        source.visititems(copy)
    cast.replace(path)


def save_backbone_preset(backbone, preset_dir, weights_dtype=None, metadata=None) -> None:
    _check_weights_dtype(weights_dtype)
    folder = pathlib.Path(preset_dir)
    write_config(backbone, folder, CONFIG_FILE)
    backbone.save_weights(folder / BACKBONE_WEIGHTS_FILE)
    _cast_floats(folder / BACKBONE_WEIGHTS_FILE, weights_dtype)
    write_metadata(folder, backbone, weights_dtype, metadata)


def save_classifier_preset(classifier, preset_dir, weights_dtype=None, metadata=None) -> None:
    _check_weights_dtype(weights_dtype)
    folder = pathlib.Path(preset_dir)
    save_backbone_preset(classifier.backbone, folder, weights_dtype)
    write_config(classifier, folder, TASK_FILE)
    _save_head(classifier, folder / TASK_WEIGHTS_FILE, weights_dtype)
    if classifier.preprocessor is not None:
        classifier.preprocessor.save_to_preset(folder)
    extra = {"num_classes": classifier.num_classes, "class_names": classifier.class_names, **(metadata or {})}
    write_metadata(folder, classifier, weights_dtype, extra)


def _save_head(classifier, path: pathlib.Path, weights_dtype) -> None:
    import h5py

    with h5py.File(path, "w") as file:
        for layer in classifier.head_layers():
            for index, weight in enumerate(layer.weights):
                file[f"{layer.name}/{index}"] = keras.ops.convert_to_numpy(weight)
    _cast_floats(path, weights_dtype)


def write_metadata(folder: pathlib.Path, model, weights_dtype, extra: dict | None) -> None:
    """metadata.json: what keras-hub records, the caller's facts, and every file's sha256."""
    from keras_gdfr import __version__

    metadata = {
        "class": type(model).__name__,
        "keras_version": keras.version(),
        "keras_gdfr_version": __version__,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dtype": weights_dtype or "float32",
        **(extra or {}),
    }
    metadata["files"] = {name: sha256(folder / name) for name in CHECKED_FILES if (folder / name).is_file()}
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))


# --------------------------------------------------------------------------- reading


def _expect_class(config: dict, cls, folder, file_name: str) -> None:
    registered = config.get("registered_name") or config.get("class_name")
    if registered not in (f"keras_gdfr>{cls.__name__}", cls.__name__):
        raise PresetError(f"preset {str(folder)!r}: {file_name} holds a {registered!r}, not a {cls.__name__}")


def _deserialize(config: dict, folder, file_name: str):
    try:
        return keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError, KeyError) as error:
        raise PresetError(f"preset {str(folder)!r}: {file_name} does not build ({str(error).splitlines()[0]})") from None


def load_backbone(cls, preset, load_weights=True, file_hash=None, **kwargs):
    folder = preset_directory(preset, file_hash)
    config = read_config(folder, CONFIG_FILE)
    _expect_class(config, cls, folder, CONFIG_FILE)
    config["config"] = {**config["config"], **kwargs}
    backbone = _deserialize(config, folder, CONFIG_FILE)
    if load_weights:
        _load_backbone_weights(backbone, folder)
    return backbone


def _load_backbone_weights(backbone, folder: pathlib.Path) -> None:
    path = folder / BACKBONE_WEIGHTS_FILE
    if not path.is_file():
        raise PresetError(f"preset {str(folder)!r}: no {BACKBONE_WEIGHTS_FILE}")
    try:
        backbone.load_weights(path)
    except Exception as error:  # not HDF5, truncated, or another architecture
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PresetError(f"preset {str(folder)!r}: {BACKBONE_WEIGHTS_FILE} does not load into this backbone ({first_line})") from None


def load_preprocessor(cls, preset, file_hash=None, **kwargs):
    folder = preset_directory(preset, file_hash)
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise PresetError(f"preset {str(folder)!r}: no {PREPROCESSOR_FILE} (a backbone-only preset)")
    config = read_config(folder, PREPROCESSOR_FILE)
    _expect_class(config, cls, folder, PREPROCESSOR_FILE)
    config["config"] = {**config["config"], **kwargs}
    return _deserialize(config, folder, PREPROCESSOR_FILE)


def load_classifier(cls, preset, load_weights=True, file_hash=None, **kwargs):
    """The preset's classifier; a new head when `num_classes` differs from the preset's (fine-tuning)."""
    folder = preset_directory(preset, file_hash)
    backbone_kwargs = {key: kwargs.pop(key) for key in ("image_shape", "dtype") if key in kwargs}
    backbone = kwargs.pop("backbone", None) or load_backbone(cls.backbone_cls, folder, load_weights, **backbone_kwargs)
    if not (folder / TASK_FILE).is_file():
        if "num_classes" not in kwargs:
            raise PresetError(f"preset {str(folder)!r} is a backbone preset (no head): give num_classes for a new head")
        return cls(backbone=backbone, **kwargs)
    task = read_config(folder, TASK_FILE)
    _expect_class(task, cls, folder, TASK_FILE)
    saved = {key: value for key, value in task["config"].items() if key not in ("backbone", "preprocessor")}
    new_head = kwargs.get("num_classes", saved["num_classes"]) != saved["num_classes"]
    if new_head:
        saved["class_names"] = None
    if "preprocessor" not in kwargs:
        saved_preprocessor = task["config"].get("preprocessor")
        kwargs["preprocessor"] = None if saved_preprocessor is None else _deserialize(saved_preprocessor, folder, TASK_FILE)
    try:
        classifier = cls(backbone=backbone, **{**saved, **kwargs})
    except ValueError as error:
        raise PresetError(f"preset {str(folder)!r}: {error}") from None
    if load_weights and not new_head:
        load_head(classifier, folder)
    return classifier


def load_head(classifier, folder: pathlib.Path) -> None:
    """The head's weights from task.weights.h5; refuse (one line, both shapes) a head that does not fit."""
    import h5py

    path = folder / TASK_WEIGHTS_FILE
    try:
        with h5py.File(path, "r") as file:
            stored = {layer.name: [file[f"{layer.name}/{i}"][()] for i in range(len(layer.weights))]
                      for layer in classifier.head_layers() if layer.weights}
    except (OSError, KeyError) as error:
        raise PresetError(f"preset {str(folder)!r}: {TASK_WEIGHTS_FILE} cannot be read ({error})") from None
    for name, arrays in stored.items():
        layer = classifier.get_layer(name)
        here = [tuple(weight.shape) for weight in layer.weights]
        there = [tuple(array.shape) for array in arrays]
        if here != there:
            raise PresetError(
                f"preset {str(folder)!r}: its head does not fit this classifier: layer {name!r} has shapes "
                f"{there} in the preset, {here} here (num_classes={classifier.num_classes})"
            )
    for name, arrays in stored.items():
        classifier.get_layer(name).set_weights(arrays)


def head_arrays(folder: pathlib.Path, layer_name: str) -> list:
    """The arrays task.weights.h5 holds for one head layer (e.g. "predictions"), in order."""
    import h5py

    try:
        with h5py.File(folder / TASK_WEIGHTS_FILE, "r") as file:
            group = file[layer_name]
            return [group[str(index)][()] for index in range(len(group))]
    except (OSError, KeyError) as error:
        raise PresetError(f"preset {str(folder)!r}: {TASK_WEIGHTS_FILE} cannot be read ({error})") from None
