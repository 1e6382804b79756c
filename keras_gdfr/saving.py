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


def inference_model(model: keras.Model, recipe) -> keras.Model:
    """The model a run saves: raw 0-255 images in, when the recipe's pipeline normalises."""
    if not recipe.augment.normalize:
        return model
    return with_preprocessing(model, recipe.spec.mean, recipe.spec.std)


def pipeline_model(model: keras.Model, recipe) -> keras.Model:
    """The model to feed with the recipe's pipeline (`gdfr eval`): no double normalisation."""
    return without_preprocessing(model) if recipe.augment.normalize else model


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
    from keras_gdfr.data.specs import readable_class_names

    path = folder / CLASS_NAMES_FILE
    if path.is_file():
        return list(json.loads(path.read_text())["class_names"])
    if recipe is not None and recipe.data.classes:
        return readable_class_names(recipe.data.dataset, recipe.data.classes)
    # Older run directories: the class ids are in the run_start event.
    from keras_gdfr.training.events import EVENTS_FILE, read_events

    if (folder / EVENTS_FILE).is_file():
        for event in read_events(folder):
            if event["event"] == "run_start" and event.get("class_names"):
                return readable_class_names(recipe.data.dataset if recipe else None, event["class_names"])
    return [str(i) for i in range(num_classes)]


def load_run_model(source) -> LoadedRun:
    """A run directory's (or a `.keras` file's) model, taking raw 0-255 images, and its class names.

    A `.keras` file beside a `recipe.json` (inside a run directory) is read with
    that recipe. Raises ValueError naming `source` when it is neither.
    """
    from keras_gdfr.training.recipe import Recipe

    source = pathlib.Path(source)
    if source.is_dir():
        model_file = source / MODEL_FILE
        if not model_file.is_file():
            raise ValueError(f"{source}: no {MODEL_FILE} (the run has not completed)")
    elif source.suffix == ".keras" and source.is_file():
        model_file = source
    else:
        raise ValueError(f"{source}: neither a run directory nor a .keras model file")
    folder = model_file.parent
    recipe = None
    if (folder / RECIPE_FILE).is_file():
        recipe = Recipe.from_dict(json.loads((folder / RECIPE_FILE).read_text()), origin=str(folder / RECIPE_FILE))
    try:
        model = load_model(model_file, compile=False)
    except Exception as error:  # a corrupt or foreign file
        raise ValueError(f"{model_file}: cannot load the model: {error}") from None
    migrated = False
    if recipe is not None and recipe.augment.normalize and not has_preprocessing(model):
        model, migrated = inference_model(model, recipe), True
    names = _class_names(folder, recipe, int(model.output_shape[-1]))
    return LoadedRun(model, names, recipe.data.dataset if recipe else None, recipe, model_file, migrated)
