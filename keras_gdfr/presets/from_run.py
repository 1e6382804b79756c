"""A finished run directory as a preset: `gdfr preset save RUN_DIR NAME`.

The run's `model.keras` (a flat `GDFRNet`, its normalisation inside) becomes a
`GDFRNetImageClassifier`: a `GDFRNetBackbone` of the recipe's architecture with the
run's layers copied by name, its `head` as `predictions`, and a preprocessor that
resizes to the recipe's image size and normalises as the run's model does. The
converted classifier must give the run model's outputs (1e-4) on random images before
anything is written; the directory appears whole (written beside it, then renamed).
"""

from __future__ import annotations

import datetime
import json
import pathlib
import shutil
import tempfile

from keras_gdfr.presets import NAME_PATTERN, PresetError, sha256
from keras_gdfr.provenance import git_commit

EVAL_FILE = "eval.json"
CONVERSION_TOLERANCE = 1e-4


def save_run_as_preset(run_dir, name: str, dest, weights_dtype: str | None = None, description: str | None = None,
                       force: bool = False) -> pathlib.Path:
    """Write `dest/name/` from the run in `run_dir`; return its path. PresetError (one line) on bad input."""
    if not NAME_PATTERN.match(name):
        raise PresetError(f"preset name {name!r}: use lower-case letters, digits and underscores (e.g. gdfrnet_tiny_cifar10)")
    target = pathlib.Path(dest) / name
    if target.exists() and not force:
        raise PresetError(f"{target} already exists (--force replaces it)")
    classifier, metadata = run_classifier(pathlib.Path(run_dir))
    if description:
        metadata["description"] = description
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
    try:
        classifier.save_to_preset(staging, weights_dtype=weights_dtype, metadata=metadata)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def zip_preset(folder: pathlib.Path) -> tuple[pathlib.Path, str]:
    """`folder.zip` (holding `folder/`) beside it, and its sha256 (the `file_hash` for `from_preset(url)`)."""
    archive = shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name)
    return pathlib.Path(archive), sha256(pathlib.Path(archive))


def run_classifier(run_dir: pathlib.Path):
    """(classifier, metadata) of a completed run; PresetError when it is not one."""
    import keras
    import numpy as np

    from keras_gdfr.models.backbone import GDFRNetBackbone
    from keras_gdfr.models.classifier import GDFRNetImageClassifier, default_preprocessor
    from keras_gdfr.saving import PREPROCESSING_LAYER, load_run_model

    try:
        run = load_run_model(run_dir)
    except ValueError as error:
        raise PresetError(str(error)) from None
    if run.recipe is None or not run_dir.is_dir():
        raise PresetError(f"{run_dir}: not a run directory (no recipe.json)")
    recipe = run.recipe
    model = run.model
    architecture = recipe.model_config()
    backbone = GDFRNetBackbone(recipe.model.variant, **architecture)
    _copy_by_name(model, backbone, run_dir)
    normalization = next((layer for layer in model.layers if layer.name == PREPROCESSING_LAYER), None)
    stats = (normalization.mean, normalization.std) if normalization is not None else (None, None)
    size = recipe.spec.image_size
    head = model.get_layer("head")
    classifier = GDFRNetImageClassifier(
        backbone, num_classes=head.units, preprocessor=default_preprocessor(size, *stats),
        class_names=run.class_names, compile=False,
    )
    classifier.get_layer("predictions").set_weights(head.get_weights())
    images = np.random.default_rng(0).integers(0, 256, (4, size, size, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    got = keras.ops.convert_to_numpy(classifier(images, training=False))
    difference = float(np.max(np.abs(got - expected)))
    if difference > CONVERSION_TOLERANCE:
        raise PresetError(f"{run_dir}: the converted classifier differs from model.keras by {difference:.2e}; nothing written")
    return classifier, _metadata(run_dir, recipe, size)


def _copy_by_name(model, backbone, run_dir) -> None:
    source = {layer.name: layer for layer in model.layers}
    for layer in backbone.layers:
        if not layer.weights:
            continue
        if layer.name not in source:
            raise PresetError(f"{run_dir}: model.keras has no layer {layer.name!r} (its recipe.json describes another architecture)")
        layer.set_weights(source[layer.name].get_weights())


def _metadata(run_dir: pathlib.Path, recipe, size: int) -> dict:
    evaluation = _read_json(run_dir / EVAL_FILE)
    if evaluation is None:
        raise PresetError(f"{run_dir}: no {EVAL_FILE} (run `gdfr eval {run_dir}` first: a preset records its test top-1)")
    return {
        "description": f"GDFRNet {recipe.model.variant} trained on {recipe.data.dataset}",
        "dataset": recipe.data.dataset,
        "test_top1": evaluation["accuracy"],
        "test_examples": evaluation.get("num_examples"),
        "test_source": evaluation.get("source"),
        "variant": recipe.model.variant,
        "image_size": size,
        "resize": recipe.augment.resize if size >= _large_size() else None,
        "recipe": recipe.to_dict(),
        "run_id": run_dir.resolve().name,
        "date_trained": _date_trained(run_dir),
        "commit": _commit_trained(run_dir),
        "commit_saved": git_commit(),
    }


def _large_size() -> int:
    from keras_gdfr.data.specs import LARGE_IMAGE_SIZE

    return LARGE_IMAGE_SIZE


def _read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _date_trained(run_dir: pathlib.Path) -> str | None:
    """The UTC time of the run's last `run_end` event (when training finished)."""
    from keras_gdfr.training.events import EVENTS_FILE, read_events

    if not (run_dir / EVENTS_FILE).is_file():
        return None
    ends = [event for event in read_events(run_dir) if event["event"] == "run_end"]
    if not ends:
        return None
    return datetime.datetime.fromtimestamp(ends[-1]["time"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _commit_trained(run_dir: pathlib.Path) -> str | None:
    """The commit the run recorded when it started (`run_start`'s `commit`); None for runs from before it did."""
    from keras_gdfr.training.events import first_run_start

    start = first_run_start(run_dir)
    return start.get("commit") if start else None
