"""`gdfr export`: a run's model as .keras, TensorFlow SavedModel, ONNX or a torch.export `.pt2`.

Every artifact takes raw 0-255 images (the preprocessing is inside, see
`keras_gdfr.saving`) with a free batch size, and is checked after writing: it is
reloaded with its own runtime and run on real images, and the largest absolute
difference of its logits from the Keras model's is printed.

| format        | written by                                   | reloaded and run by              | backend |
|---------------|----------------------------------------------|----------------------------------|---------|
| `keras`       | `model.save`                                 | `keras.saving.load_model`        | any     |
| `saved_model` | `model.export(format="tf_saved_model")`      | `tf.saved_model.load(...).serve` | tensorflow |
| `onnx`        | `torch.onnx.export(dynamo=True)` (torch.export) | `onnxruntime.InferenceSession` | torch   |
| `torch`       | `torch.export.export` + `torch.export.save`  | `torch.export.load(...).module()` | torch  |

The command re-runs itself under the backend a format needs. ONNX goes through
torch.export (Keras's own `model.export(format="onnx")` on torch falls back to the
TorchScript exporter whenever the batch size is free); it needs `onnx` and
`onnxscript` to write and `onnxruntime` to check.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pathlib
import sys

import click

# format: (backend it is written under or None for any, file suffix, [(module, pip package)])
FORMATS = {
    "keras": (None, ".keras", []),
    "saved_model": ("tensorflow", "", [("tensorflow", "tensorflow")]),
    "onnx": ("torch", ".onnx", [("torch", "torch"), ("onnx", "onnx"), ("onnxscript", "onnxscript"),
                                ("onnxruntime", "onnxruntime")]),
    "torch": ("torch", ".pt2", [("torch", "torch")]),
}
RUNTIMES = {
    "keras": "keras.saving.load_model", "saved_model": "tf.saved_model.load",
    "onnx": "onnxruntime", "torch": "torch.export.load",
}
MAX_BATCH = 4096


class ExportError(Exception):
    """An export that cannot be made; the message says why (and what to install)."""


def missing_packages(fmt: str) -> list[str]:
    """The pip packages `fmt` needs that are not installed."""
    return [package for module, package in FORMATS[fmt][2] if importlib.util.find_spec(module) is None]


def default_path(source: pathlib.Path, fmt: str) -> pathlib.Path:
    folder = source if source.is_dir() else source.parent
    name = {"saved_model": "saved_model"}.get(fmt, "model")
    return folder / "export" / f"{name}{FORMATS[fmt][1]}"


def _torch_module(model):
    """A torch Module with one `image` argument (Keras models take *args, which torch.export cannot name)."""
    import torch

    class ImageModel(torch.nn.Module):
        def __init__(self, keras_model):
            super().__init__()
            self.keras_model = keras_model

        def forward(self, image):
            return self.keras_model(image, training=False)

    module = ImageModel(model)
    module.eval()
    return module


def _torch_args(model):
    """(sample input of batch 2, dynamic_shapes with a free batch) for torch.export."""
    import torch

    shape = (2, *model.input_shape[1:])
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    device = model.variables[0].value.device if model.variables else None  # the model's: a CPU sample would not mix
    return (torch.zeros(shape, dtype=torch.float32, device=device),), {"image": {0: batch}}


def write(model, fmt: str, path: pathlib.Path) -> pathlib.Path:
    """Write `model` as `fmt` at `path` (a folder for saved_model) atomically (keras_gdfr.atomic):
    a full disk or a kill leaves the old artifact or none, never a torn one."""
    from keras_gdfr.atomic import atomic_write, check_writable

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(path.parent)
    return atomic_write(path, lambda tmp: _write_unsafe(model, fmt, tmp), suffix=FORMATS[fmt][1])


def _write_unsafe(model, fmt: str, path: pathlib.Path) -> pathlib.Path:
    if fmt == "keras":
        model.save(path)
    elif fmt == "saved_model":
        model.export(str(path), format="tf_saved_model", verbose=False)
    elif fmt == "torch":
        import torch

        args, dynamic = _torch_args(model)
        torch.export.save(torch.export.export(_torch_module(model), args, dynamic_shapes=dynamic), str(path))
    elif fmt == "onnx":
        import torch

        args, dynamic = _torch_args(model)
        with _quiet_onnx_exporter():
            program = torch.onnx.export(
                _torch_module(model), args, dynamo=True, dynamic_shapes=dynamic,
                input_names=["image"], output_names=["logits"], verbose=False,
            )
            program.optimize()
        program.save(str(path))
    else:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return path


@contextlib.contextmanager
def _quiet_onnx_exporter():
    """torch.onnx's library noise that says nothing about our model: one log line per torchvision
    op it skips (torchvision is not a dependency) and torch's own pytree FutureWarning."""
    import logging
    import warnings

    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def run_artifact(fmt: str, path: pathlib.Path, images):
    """The artifact's outputs on `images` (float32 raw 0-255, model layout), run by its own runtime."""
    import numpy as np

    if fmt == "keras":
        from keras_gdfr.saving import load_model

        return np.asarray(load_model(path, compile=False).predict(images, verbose=0))
    if fmt == "saved_model":
        import tensorflow as tf

        artifact = tf.saved_model.load(str(path))  # keep a reference: its variables die with it
        return artifact.serve(tf.constant(images)).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    if fmt == "torch":
        import torch

        module = torch.export.load(str(path)).module()
        device = next(iter(module.state_dict().values()), torch.empty(0)).device  # where it was exported
        with torch.no_grad():
            return module(torch.from_numpy(images).to(device)).cpu().numpy()
    raise ExportError(f"unknown format {fmt!r}")


def export_and_check(model, fmt: str, path, images) -> dict:
    """Write, reload with the format's runtime, compare on `images`: {"path", "max_abs_diff", "runtime", ...}."""
    import keras
    import numpy as np

    missing = missing_packages(fmt)
    if missing:
        raise ExportError(f"--format {fmt} needs {', '.join(missing)}: pip install {' '.join(missing)}")
    needed = FORMATS[fmt][0]
    if needed and keras.backend.backend() != needed:
        raise ExportError(f"--format {fmt} is written under KERAS_BACKEND={needed} (now {keras.backend.backend()})")
    path = write(model, fmt, pathlib.Path(path))
    expected = np.asarray(model.predict(images, verbose=0), dtype="float64")
    got = np.asarray(run_artifact(fmt, path, images), dtype="float64")
    if got.shape != expected.shape:
        raise ExportError(f"{path}: the reloaded artifact returns shape {got.shape}, the model {expected.shape}")
    return {
        "format": fmt, "path": str(path), "runtime": RUNTIMES[fmt], "backend": keras.backend.backend(),
        "images": int(len(images)), "max_abs_diff": float(np.abs(got - expected).max()),
        "max_abs_logit": float(np.abs(expected).max()),
        "same_top1": bool((got.argmax(1) == expected.argmax(1)).all()),
    }


def sample_images(loaded, image_targets, count: int):
    """(real raw images to compare on, what they are): `image_targets` (files/folders), else the run's test split."""
    from keras_gdfr.predict import decode_files, image_files, read_images
    from keras_gdfr.saving import model_image_size
    from keras_gdfr.saving import model_data_format

    data_format = model_data_format(loaded.model)
    size = loaded.recipe.spec.image_size if loaded.recipe is not None else model_image_size(loaded.model)
    if image_targets:
        files = image_files(image_targets)[:count]
        images, _, bad = decode_files(files, size, data_format)
        if bad:
            path, why = next(iter(bad.items()))
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise ExportError(f"{path}: {why}{more}; --images takes image files")
        return images, f"{len(files)} images from {', '.join(image_targets)}"
    if loaded.recipe is None:
        raise ExportError(f"{loaded.source}: no recipe.json beside it; pass --images with real images to check on")
    from keras_gdfr.training.recipe import Recipe
    from keras_gdfr.training.run import load_splits

    payload = loaded.recipe.to_dict()
    payload["data"]["limit_test"] = count
    _, test = load_splits(Recipe.from_dict(payload, origin=str(loaded.source)))
    if test.encoded is not None:  # 256-px data: decoded, resized and cropped as the test split is
        images = read_images(test.encoded, size, data_format)
    else:  # 32-px data: already S x S uint8
        images = test.images.astype("float32")
        images = images.transpose(0, 3, 1, 2) if data_format == "channels_first" else images
    return images, f"{len(test)} images of {test.description}"


@click.command(name="export")
@click.argument("source", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), required=True, help="Artifact format.")
@click.option("--out", type=click.Path(), help="Where to write it (default: SOURCE/export/model.<suffix>).")
@click.option("--images", "image_targets", multiple=True, help="Real images (files/folders) to check on (default: the run's test split).")
@click.option("--count", type=click.IntRange(min=1), default=16, show_default=True, help="Images to check on.")
def export_command(source, fmt, out, image_targets, count):
    """Write SOURCE's model (a run directory or .keras) as --format, reload it with its runtime, print the max difference."""
    from keras_gdfr.training.commands import _ensure_backend

    missing = missing_packages(fmt)
    if missing:
        _fail(f"--format {fmt} needs {', '.join(missing)}: pip install {' '.join(missing)}")
    if FORMATS[fmt][0]:
        _ensure_backend(FORMATS[fmt][0])
    from keras_gdfr.data.errors import DataError
    from keras_gdfr.saving import load_run_model

    try:
        loaded = load_run_model(source)
        images, described = sample_images(loaded, image_targets, count)
        path = pathlib.Path(out) if out else default_path(pathlib.Path(source), fmt)
        result = export_and_check(loaded.model, fmt, path, images)
    except (ValueError, ExportError, DataError) as error:
        _fail(str(error))
    except OSError as error:  # a read-only folder, a full disk: the artifact was written atomically, nothing torn is left
        where = error.filename or (out or default_path(pathlib.Path(source), fmt))
        _fail(f"{where}: cannot write the export ({error.strerror or error}); nothing was written")
    note = " (old run directory: preprocessing added to its model.keras)" if loaded.migrated else ""
    click.echo(f"{fmt} -> {result['path']}{note}\nchecked with {result['runtime']} on {described}: max |difference| "
               f"{result['max_abs_diff']:.3g} from the Keras model (largest |output| {result['max_abs_logit']:.3g}), "
               f"same top-1: {result['same_top1']}")


def _fail(message: str):
    click.echo(f"error: {message}", err=True)
    sys.exit(1)
