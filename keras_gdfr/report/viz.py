"""`gdfr viz`: the paper's Fig. 17 feature heatmaps for one image.

Four maps over the input image, from a trained GDFRNet (a run directory or a
`.keras` file):

- (a) `plain`: stage 1's last block with its FRM bypassed, i.e. the plain
  residual block ReLU(F(x) + s(x)) with the same weights (Fig. 17b, "layer1 of
  the ordinary residual block"). In a variant without FRM (net1, net2, net4)
  it is that block's own output.
- (b) `frrb`: the same block's output with its FRM, the FRRB (Fig. 17c).
- (c) `fgcm`: the first FGCM of the feature optimization branch, the detail
  map with edge information (Fig. 17d).
- (d) `fom`: the FOM at the same level, global and detail information fused
  (Fig. 17e).

A heatmap is the per-pixel channel mean of |feature| (or the channel L2 norm),
min-max normalised, bilinearly up-sampled to the image and overlaid with a
colour map. The image is resized to the model's input size and normalised with
the dataset's mean/std, as in training.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

MAP_TITLES = {
    "plain": "(a) plain residual block, layer 1",
    "frrb": "(b) FRRB, layer 1",
    "fgcm": "(c) FGCM detail map",
    "fom": "(d) FOM fused map",
}
REDUCTIONS = ("mean", "l2")
MIN_DISPLAY_SIZE = 224
PANEL_HEIGHT = 360
PANEL_COLUMN_WIDTH = 300


@dataclasses.dataclass
class LoadedModel:
    """A model to visualise, with what is needed to feed it.

    Attributes:
        model: the keras.Model.
        dataset: the dataset it was trained on (for normalisation), or None.
        normalize: whether training normalised its inputs with the dataset's mean/std.
    """

    model: object
    dataset: str | None
    normalize: bool = True


def _data_format(model) -> str:
    """The model's image data format, read from its stem (else Keras's global setting)."""
    import keras

    try:
        return model.get_layer("stem").data_format
    except (ValueError, AttributeError):
        return keras.config.image_data_format()


def input_size(model) -> tuple[int | None, int | None]:
    """(height, width) of the model's input, None where not fixed."""
    shape = model.input_shape
    if _data_format(model) == "channels_first":
        return shape[2], shape[3]
    return shape[1], shape[2]


def _build_from_run(run):
    """Rebuild a run's model from its recipe and load its best (else last) weights."""
    from keras_gdfr.models import GDFRNet
    from keras_gdfr.training.recipe import Recipe

    recipe = Recipe.from_dict(run.recipe)
    spec = recipe.spec
    num_classes = len(recipe.data.classes) or spec.num_classes
    size = recipe.augment.resize
    model = GDFRNet(recipe.model.variant, input_shape=(size, size, 3), num_classes=num_classes,
                    **recipe.model.overrides)
    for weights in (run.path / "checkpoints" / "best.weights.h5", run.path / "checkpoints" / "last" / "model.weights.h5"):
        if weights.is_file():
            model.load_weights(weights)
            return model
    raise FileNotFoundError(f"{run.path}: no model.keras and no checkpoint weights to visualise")


def load_model(source, dataset: str | None = None) -> LoadedModel:
    """A model from a run directory (its model.keras, else its checkpoint) or a `.keras` file.

    Args:
        source: a run directory or a `.keras` file.
        dataset: the dataset for normalisation; a run directory's own dataset wins.
    """
    import keras

    import keras_gdfr.layers  # noqa: F401  (registers the custom layers for loading)
    from keras_gdfr.report.runs import is_run_dir, load_run
    from keras_gdfr.saving import has_preprocessing

    source = pathlib.Path(source)
    if is_run_dir(source):
        run = load_run(source)
        normalize = bool((run.recipe.get("augment") or {}).get("normalize", True))
        model_file = source / "model.keras"
        model = keras.saving.load_model(model_file, compile=False) if model_file.is_file() else _build_from_run(run)
        normalize = normalize and not has_preprocessing(model)  # a model.keras that normalises itself
        return LoadedModel(model, run.dataset if run.dataset != "?" else dataset, normalize)
    if source.suffix == ".keras" and source.is_file():
        model = keras.saving.load_model(source, compile=False)
        return LoadedModel(model, dataset, not has_preprocessing(model))
    raise FileNotFoundError(f"{source} is neither a run directory nor a .keras model file")


def preprocess(image_path, size: tuple[int, int], dataset: str | None, normalize: bool = True, data_format="channels_last"):
    """Read an image as the model sees it.

    Returns:
        (rgb, batch): the resized image as uint8 (H, W, 3) for display, and the
        model's float32 input batch of one, normalised with the dataset's mean/std
        (when `normalize` and the dataset is known).
    """
    from PIL import Image

    from keras_gdfr.data.specs import DATASETS

    height, width = size
    with Image.open(image_path) as image:
        rgb = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.uint8)
    x = rgb.astype(np.float32) / 255.0
    spec = DATASETS.get(dataset) if dataset else None
    if normalize and spec is not None:
        x = (x - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    if data_format == "channels_first":
        x = x.transpose(2, 0, 1)
    return rgb, x[None]


def _layer_or_none(model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _last_stage1_block(model):
    names = [layer.name for layer in model.layers if layer.name.startswith("stage1_block")]
    if not names:
        raise ValueError("the model has no stage1_block* layers: not a GDFRNet")
    return model.get_layer(max(names, key=lambda n: int(n.removeprefix("stage1_block"))))


def _branch_level(model) -> int | None:
    """The first branch level with both an FGCM and an FOM (else with an FOM)."""
    levels = sorted(
        int(layer.name[len("branch"):-len("_fom")]) for layer in model.layers
        if layer.name.startswith("branch") and layer.name.endswith("_fom")
    )
    for level in levels:
        if _layer_or_none(model, f"branch{level}_fgcm") is not None:
            return level
    return levels[0] if levels else None


def _has_frm(block) -> bool:
    return getattr(block, "frm", None) is not None


def feature_maps(model, batch) -> dict[str, np.ndarray]:
    """The Fig. 17 features of one input batch, as channels-last arrays (H, W, C).

    Maps a variant does not have (no FRM: no `frrb`; no branch: no `fgcm`/`fom`)
    are left out.
    """
    import keras
    from keras import ops

    block = _last_stage1_block(model)
    outputs = {"block_input": block.input, "block": block.output}
    level = _branch_level(model)
    for key, name in (("fgcm", f"branch{level}_fgcm"), ("fom", f"branch{level}_fom")):
        layer = _layer_or_none(model, name) if level is not None else None
        if layer is not None:
            outputs[key] = layer.output
    names = list(outputs)
    extractor = keras.Model(model.input, [outputs[n] for n in names])
    values = dict(zip(names, extractor(batch, training=False)))
    maps = {}
    if _has_frm(block):
        x = values["block_input"]
        maps["plain"] = ops.relu(block.residual_features(x, training=False) + block.shortcut_features(x, training=False))
        maps["frrb"] = values["block"]
    else:
        maps["plain"] = values["block"]
    for key in ("fgcm", "fom"):
        if key in values:
            maps[key] = values[key]
    channels_first = _data_format(model) == "channels_first"
    result = {}
    for key, tensor in maps.items():
        array = np.asarray(ops.convert_to_numpy(tensor))[0]
        result[key] = array.transpose(1, 2, 0) if channels_first else array
    return result


def heatmap(feature: np.ndarray, size: tuple[int, int], reduce: str = "mean") -> np.ndarray:
    """A (H, W) map in [0, 1] of one (h, w, C) feature, up-sampled to `size` (height, width).

    `reduce`: "mean" (channel mean of |feature|) or "l2" (channel L2 norm).
    """
    from PIL import Image

    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}. Received: reduce={reduce!r}")
    feature = np.asarray(feature, dtype=np.float32)
    energy = np.abs(feature).mean(axis=-1) if reduce == "mean" else np.sqrt((feature**2).sum(axis=-1))
    low, high = float(energy.min()), float(energy.max())
    energy = (energy - low) / (high - low) if high > low else np.zeros_like(energy)
    resized = Image.fromarray(energy.astype(np.float32)).resize((size[1], size[0]), Image.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def overlay(rgb: np.ndarray, heat: np.ndarray, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """The image with a colour-mapped heatmap blended over it, uint8 (H, W, 3)."""
    import matplotlib

    colours = matplotlib.colormaps[cmap](heat)[..., :3]
    blended = (1.0 - alpha) * (np.asarray(rgb, np.float32) / 255.0) + alpha * colours
    return (np.clip(blended, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _display_size(size: tuple[int, int]) -> tuple[int, int]:
    """Small images (32 px) are shown enlarged so the maps are readable."""
    scale = max(1, int(np.ceil(MIN_DISPLAY_SIZE / max(size))))
    return size[0] * scale, size[1] * scale


def _save_panel(rgb: np.ndarray, overlays: dict[str, np.ndarray], path: pathlib.Path, title: str) -> pathlib.Path:
    """Original + overlays in one row, as Fig. 17 (300 px per column, 360 px high)."""
    from keras_gdfr.report.figures import DPI, _pyplot

    plt = _pyplot()
    columns = 1 + len(overlays)
    fig, axes = plt.subplots(1, columns, figsize=(columns * PANEL_COLUMN_WIDTH / DPI, PANEL_HEIGHT / DPI), dpi=DPI)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.84, wspace=0.04)
    panels = [("original", rgb)] + [(MAP_TITLES[k], v) for k, v in overlays.items()]
    for ax, (name, image) in zip(np.atleast_1d(axes), panels):
        ax.imshow(image)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def visualize(source, image_path, out_dir, dataset: str | None = None, reduce: str = "mean") -> dict[str, pathlib.Path]:
    """Write Fig. 17-style heatmaps of one image for a trained model.

    Args:
        source: a run directory, a `.keras` file, or a `LoadedModel`.
        image_path: the image (any format PIL reads).
        out_dir: where the PNGs go (created).
        dataset: the dataset whose mean/std normalise the image when `source` is a
            `.keras` file (a run directory knows its own).
        reduce: "mean" (channel mean of |feature|) or "l2" (channel L2 norm).

    Returns:
        {"plain"|"frrb"|"fgcm"|"fom": overlay PNG, "panel": all of them in a row}.
    """
    from PIL import Image

    loaded = source if isinstance(source, LoadedModel) else load_model(source, dataset)
    model = loaded.model
    size = tuple(s or 0 for s in input_size(model))
    if not all(size):
        from keras_gdfr.data.specs import DATASETS

        side = DATASETS[loaded.dataset or "cifar10"].image_size
        size = (side, side)
    rgb, batch = preprocess(image_path, size, loaded.dataset, loaded.normalize, _data_format(model))
    display = _display_size(size)
    shown = np.asarray(Image.fromarray(rgb).resize((display[1], display[0]), Image.BICUBIC))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = pathlib.Path(image_path).stem
    written, overlays = {}, {}
    for key, feature in feature_maps(model, batch).items():
        overlays[key] = overlay(shown, heatmap(feature, display, reduce))
        written[key] = out_dir / f"{stem}-{key}.png"
        Image.fromarray(overlays[key]).save(written[key])
    written["panel"] = _save_panel(shown, overlays, out_dir / f"{stem}-fig17.png", f"{model.name}: {stem}")
    return written
