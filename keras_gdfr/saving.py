"""Saving and loading GDFRNet models: every keras-gdfr class registered, preprocessing inside.

A run's `model.keras` takes raw 0-255 RGB images in the layout it was trained in:
when the recipe normalises (`[augment] normalize`, the default), an
`ImageNormalization` layer named `preprocessing` with the dataset's mean/std sits
in front of the network (`save_run_model`). Its class names go beside it in
`class_names.json` (readable names and the source's ids).

Migration: run directories written before this (a `model.keras` without the
`preprocessing` layer although the recipe normalises) keep loading;
`load_run_model` adds the preprocessing in memory, so `gdfr predict` and
`gdfr export` give the same answers for old and new run directories. `gdfr eval`
feeds the pipeline's normalised images to `pipeline_model(model, recipe)`, which
removes the layer again when the pipeline normalises.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import keras

import keras_gdfr.layers  # noqa: F401  (registers FRM, FGCM, FOM, FRRB, ...)
import keras_gdfr.models.classifier  # noqa: F401  (registers GDFRNetBackbone, GDFRNetImageClassifier, ...)
import keras_gdfr.training.optimizer  # noqa: F401  (registers TorchSGD and MultiStepLR)
from keras_gdfr.layers.preprocessing import ImageNormalization
from keras_gdfr.training.events import CLASS_NAMES_FILE, MODEL_FILE, RECIPE_FILE

PREPROCESSING_LAYER = "preprocessing"


def load_model(path, compile: bool = True) -> keras.Model:
    """`keras.saving.load_model` for a `.keras` file written by keras-gdfr (a run's `model.keras`)."""
    return keras.saving.load_model(path, compile=compile)


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names it and says why in one line."""


def load_model_file(path) -> keras.Model:
    """`load_model(path, compile=False)`, or ModelFileError naming the file in one line.

    Keras says "File not found" for a truncated `.keras` file and prints a hundred
    lines for a foreign one.
    """
    import zipfile

    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a readable .keras file (truncated, or not a Keras model: "
                             f"{path.stat().st_size} bytes that are no zip archive)")
    try:
        return load_model(path, compile=False)
    except Exception as error:  # a damaged member, a foreign model
        lines = str(error).strip().splitlines()
        first = lines[0][:240] if lines else type(error).__name__
        raise ModelFileError(f"{path}: cannot load the model ({first})") from None


def has_preprocessing(model: keras.Model) -> bool:
    """Whether `model` normalises its raw 0-255 input itself."""
    return any(isinstance(layer, ImageNormalization) for layer in model.layers)


def _rewired(model: keras.Model, call_function) -> keras.Model:
    """A flat functional copy of `model` sharing its layers (and weights); `call_function` may change calls."""
    source = model.inputs[0]
    inputs = keras.Input(batch_shape=source.shape, dtype=source.dtype, name=source.name)
    return keras.models.clone_model(
        model, input_tensors=inputs, clone_function=lambda layer: layer,
        call_function=lambda layer, *args, **kwargs: call_function(inputs, layer, *args, **kwargs),
    )


def with_preprocessing(model: keras.Model, mean, std) -> keras.Model:
    """`model` (taking normalised images) with an `ImageNormalization` in front: it takes raw 0-255 images.

    The layers (and their weights) are shared, not copied; the result is flat, so
    `get_layer("stage1_block1")` still works.
    """
    if has_preprocessing(model):
        return model
    data_format = model_data_format(model)
    preprocessing = ImageNormalization(mean, std, data_format=data_format, name=PREPROCESSING_LAYER)

    def call(inputs, layer, *args, **kwargs):
        if args and args[0] is inputs:
            return layer(preprocessing(args[0]), *args[1:], **kwargs)
        return layer(*args, **kwargs)

    return _rewired(model, call)


def without_preprocessing(model: keras.Model) -> keras.Model:
    """`model` without its `ImageNormalization`: it takes normalised images, as the training pipeline gives."""
    if not has_preprocessing(model):
        return model

    def call(inputs, layer, *args, **kwargs):
        if isinstance(layer, ImageNormalization):
            return args[0]
        return layer(*args, **kwargs)

    return _rewired(model, call)


def model_data_format(model: keras.Model) -> str:
    for layer in model.layers:
        if hasattr(layer, "data_format"):
            return layer.data_format
    return keras.config.image_data_format()


def model_image_size(model: keras.Model) -> int:
    """S of a model taking S x S images (channels_last or channels_first)."""
    shape = model.input_shape
    height = shape[2] if model_data_format(model) == "channels_first" else shape[1]
    if height is None:
        raise ValueError("the model's input size is not fixed; cannot choose the image size")
    return int(height)


def inference_model(model: keras.Model, recipe) -> keras.Model:
    """The model a run saves: raw 0-255 images in, when the recipe's pipeline normalises."""
    if not recipe.augment.normalize:
        return model
    return with_preprocessing(model, recipe.spec.mean, recipe.spec.std)


def pipeline_model(model: keras.Model, recipe) -> keras.Model:
    """The model to feed with the recipe's pipeline (`gdfr eval`): no double normalisation."""
    return without_preprocessing(model) if recipe.augment.normalize else model


def _normalization(model: keras.Model) -> ImageNormalization | None:
    return next((layer for layer in model.layers if isinstance(layer, ImageNormalization)), None)


def evaluation_model(model: keras.Model, recipe):
    """(model, recipe) for `gdfr eval` to feed with the recipe's pipeline, and a warning or None.

    A model that normalises with other statistics than the recipe's dataset (a CIFAR-10
    model evaluated with `--recipe recipes/svhn.toml`) keeps its own: the pipeline then
    gives raw 0-255 images. Stripping it and normalising with the recipe's mean/std gave
    a wrong accuracy without a word (issue 24).
    """
    layer = _normalization(model)
    if layer is None or not recipe.augment.normalize:
        return pipeline_model(model, recipe), recipe, None
    spec = recipe.spec
    if all(abs(a - b) < 1e-6 for a, b in zip((*layer.mean, *layer.std), (*spec.mean, *spec.std))):
        return without_preprocessing(model), recipe, None
    raw = dataclasses.replace(recipe, augment=dataclasses.replace(recipe.augment, normalize=False))
    return model, raw, (f"the model normalises with its own mean/std, not {spec.name}'s (the recipe's); "
                        "evaluating with the model's own")


def save_run_model(model: keras.Model, recipe, run_dir, class_ids, save=None) -> pathlib.Path:
    """Write a run's `model.keras` (preprocessing inside) and `class_names.json`; return the model's path.

    `save(model, path)` writes the `.keras` file (default `model.save`; the trainer may
    pass an atomic writer). `class_names.json` is replaced atomically.
    """
    from keras_gdfr.data.specs import readable_class_names
    from keras_gdfr.training.checkpoints import atomic_write_text

    run_dir = pathlib.Path(run_dir)
    class_ids = [str(c) for c in class_ids]
    names = {"class_names": readable_class_names(recipe.data.dataset, class_ids), "class_ids": class_ids}
    atomic_write_text(run_dir / CLASS_NAMES_FILE, json.dumps(names, indent=2))
    path = run_dir / MODEL_FILE
    raw_model = inference_model(model, recipe)
    if save is None:
        raw_model.save(path)
    else:
        save(raw_model, path)
    return path


@dataclasses.dataclass
class LoadedRun:
    """A model that takes raw 0-255 images, with what predicting and exporting need."""

    model: keras.Model
    class_names: list[str]
    dataset: str | None
    recipe: object | None
    source: pathlib.Path
    migrated: bool  # preprocessing added in memory (a run directory from before it was saved inside)


def _class_names(folder: pathlib.Path, recipe, num_classes: int) -> list[str]:
    """The model's class names (class_names.json, else the recipe, else the run_start event), one per output.

    Raises ModelFileError naming class_names.json when it is torn or holds another number of names.
    """
    from keras_gdfr.data.specs import readable_class_names

    path = folder / CLASS_NAMES_FILE
    if path.is_file():
        try:
            names = json.loads(path.read_text(encoding="utf-8"))["class_names"]
            if not isinstance(names, list):
                raise TypeError("class_names is not a list")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelFileError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
        if len(names) != num_classes:
            raise ModelFileError(f"{path}: {len(names)} class names, but the model has {num_classes} outputs")
        return [str(name) for name in names]
    if recipe is not None and recipe.data.classes:
        return readable_class_names(recipe.data.dataset, recipe.data.classes)
    # Older run directories: the class ids are in the run_start event.
    from keras_gdfr.training.events import EVENTS_FILE, read_events

    if (folder / EVENTS_FILE).is_file():
        for event in read_events(folder):
            if event["event"] == "run_start" and event.get("class_names"):
                return readable_class_names(recipe.data.dataset if recipe else None, event["class_names"])
    return [str(i) for i in range(num_classes)]


def _run_recipe(folder: pathlib.Path):
    """The recipe.json beside a model, or None; ModelFileError naming it when it is unreadable."""
    from keras_gdfr.training.recipe import Recipe, RecipeError

    path = folder / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        return Recipe.from_dict(json.loads(path.read_text(encoding="utf-8")), origin=str(path))
    except (OSError, ValueError) as error:  # RecipeError is a ValueError
        message = str(error) if isinstance(error, RecipeError) else f"{path}: unreadable ({error})"
        raise ModelFileError(message) from None


def _missing_model(folder: pathlib.Path) -> str:
    from keras_gdfr.training.events import EVENTS_FILE, is_run_dir

    if is_run_dir(folder):
        return f"{folder}: no {MODEL_FILE} (the run has not completed)"
    if (folder / EVENTS_FILE).is_file() or (folder / RECIPE_FILE).is_file():
        return f"{folder}: no {MODEL_FILE} (an incomplete run directory)"
    return f"{folder}: not a run directory (no {MODEL_FILE}, {RECIPE_FILE} or {EVENTS_FILE})"


def load_run_model(source) -> LoadedRun:
    """A run directory's (or a `.keras` file's) model, taking raw 0-255 images, and its class names.

    A `.keras` file beside a `recipe.json` (inside a run directory) is read with
    that recipe. Raises ValueError (ModelFileError) naming the file when it is neither or unreadable.
    """
    source = pathlib.Path(source)
    if source.is_dir():
        model_file = source / MODEL_FILE
        if not model_file.is_file():
            raise ModelFileError(_missing_model(source))
    elif source.suffix == ".keras" and source.is_file():
        model_file = source
    else:
        raise ModelFileError(f"{source}: neither a run directory nor a .keras model file")
    folder = model_file.parent
    recipe = _run_recipe(folder)
    model = load_model_file(model_file)
    migrated = False
    if recipe is not None and recipe.augment.normalize and not has_preprocessing(model):
        model, migrated = inference_model(model, recipe), True
    names = _class_names(folder, recipe, int(model.output_shape[-1]))
    return LoadedRun(model, names, recipe.data.dataset if recipe else None, recipe, model_file, migrated)
