"""`predict_files`: class names and probabilities for image files, from a run, a `.keras` model or a preset.

Images are read as the recipe's test split reads them (one source of truth, the
data modules): 32-px datasets resize the whole image to S x S (bilinear, as
`keras_gdfr.data.decode` does), 256-px datasets resize the shorter side to 9/8 S
and take the centre S x S crop (`keras_gdfr.data.augment`, as the eval pipeline does).
The model takes the raw 0-255 pixels (its preprocessing is inside:
`keras_gdfr.saving`).

Python:

    from keras_gdfr.predict import predict_files
    for row in predict_files("runs/cifar10-tiny", ["bird.jpg"], top_k=3):
        print(row["path"], row["top"])   # [{"class": "bird", "probability": 0.91}, ...]
    predict_preset_files("gdfrnet_tiny_cifar10", ["bird.jpg"], top_k=3)   # a preset (keras_gdfr.presets)

A preset's images are read the same way, at the image size (and resize) its metadata
records from the run it was made of.

No click here: the `gdfr predict` command that wraps these is in `keras_gdfr.cli`,
so the Python API needs only the package's own dependencies (and Pillow to decode).
"""

from __future__ import annotations

import pathlib


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".webp")


def image_files(targets) -> list[pathlib.Path]:
    """The image files named by `targets` (files, or folders searched recursively), sorted per folder.

    Raises ValueError naming the target that is missing or holds no image.
    """
    files = []
    for target in map(pathlib.Path, targets):
        if target.is_dir():
            found = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ValueError(f"{target}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif target.is_file():
            files.append(target)
        else:
            raise ValueError(f"{target}: no such image file or folder")
    return files


def read_images(payloads, size: int, data_format: str = "channels_last", resize: int | None = None):
    """float32 raw 0-255 images (N, S, S, 3) (or (N, 3, S, S)) from encoded files, as the test split reads them.

    ``resize``: the recipe's ``[augment] resize`` for 256-px datasets (default 9/8 S).
    """
    import numpy as np

    from keras_gdfr.data.augment import prepare_image, train_resize
    from keras_gdfr.data.decode import decode_small
    from keras_gdfr.data.specs import LARGE_IMAGE_SIZE

    if size >= LARGE_IMAGE_SIZE:
        # The eval pipeline's steps (keras_gdfr.data.augment): shorter side to R + centre
        # square (prepare_image), then the centre S crop that augment_batch takes when not training.
        resize = int(resize or train_resize(size))
        offset = (resize - size) // 2
        batch = np.stack([prepare_image(payload, resize)[offset:offset + size, offset:offset + size]
                          for payload in payloads]).astype("float32")
    else:
        batch = np.stack([decode_small(payload, size).astype("float32") for payload in payloads])
    return batch.transpose(0, 3, 1, 2) if data_format == "channels_first" else batch


def load_image_folder(folder, image_size: int, data_format: str = "channels_last"):
    """(images, labels, class_names) of an ImageFolder `folder/<class>/<image>`, for fine-tuning.

    Classes are the sorted sub-folder names; images are read as the test split reads
    them at `image_size` (float32 raw 0-255, `read_images`). Raises ValueError naming the
    folder when it has no class folder or a class folder has no image.
    """
    import numpy as np

    folder = pathlib.Path(folder)
    class_names = sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    if not class_names:
        raise ValueError(f"{folder}: no class folders (an ImageFolder is FOLDER/<class>/<image>)")
    files, labels = [], []
    for label, name in enumerate(class_names):
        found = image_files([folder / name])
        files += found
        labels += [label] * len(found)
    images = read_images([path.read_bytes() for path in files], image_size, data_format)
    return images, np.array(labels, "int32"), class_names


def probabilities(model, images, batch_size: int = 64):
    """Softmax probabilities (N, K) of `model` on raw images (the head gives logits unless told otherwise)."""
    import numpy as np

    from keras_gdfr.evaluation import softmax

    outputs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype="float64")
    head = next((layer for layer in model.layers if layer.name in ("head", "predictions")), None)
    if head is not None and getattr(head.activation, "__name__", "") == "softmax":
        return outputs
    return softmax(outputs)


def decode_files(files, size: int, data_format: str = "channels_last", resize: int | None = None):
    """(images of the readable files, their paths, {path: why} of the others), as `read_images` reads them."""
    import numpy as np

    good, paths, bad = [], [], {}
    for path in files:
        try:
            good.append(read_images([pathlib.Path(path).read_bytes()], size, data_format, resize)[0])
            paths.append(path)
        except Exception as error:  # PIL's UnidentifiedImageError, a truncated file's OSError, ...
            bad[str(path)] = _first_line(error)
    images = np.stack(good) if good else None
    return images, paths, bad


def _first_line(error: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):  # its message names a BytesIO, not the file
        return "cannot read the image (not an image format PIL knows)"
    lines = str(error).strip().splitlines()
    return f"cannot read the image ({lines[0][:200] if lines else type(error).__name__})"


def predict_files(source, targets, top_k: int = 5) -> list[dict]:
    """[{"path", "top": [{"class", "index", "probability"}, ...]}] for every image of `targets`.

    An image that cannot be read gets {"path", "error"} instead; the others are still predicted.
    """
    from keras_gdfr.saving import load_run_model, model_image_size

    loaded = load_run_model(source)
    size = loaded.recipe.spec.image_size if loaded.recipe is not None else model_image_size(loaded.model)
    resize = loaded.recipe.augment.resize if loaded.recipe is not None else None
    return _top_classes(loaded.model, loaded.class_names, targets, size, resize, top_k)


def predict_preset_files(preset, targets, top_k: int = 5) -> list[dict]:
    """`predict_files` with a preset's classifier (a shipped name, a preset directory or URL)."""
    from keras_gdfr.models.classifier import GDFRNetImageClassifier
    from keras_gdfr.presets import preset_directory, read_metadata

    folder = preset_directory(preset)
    metadata = read_metadata(folder)
    if "image_size" not in metadata:
        raise ValueError(f"preset {str(preset)!r}: its metadata.json has no image_size (not a classifier preset)")
    classifier = GDFRNetImageClassifier.from_preset(folder, compile=False)
    names = classifier.class_names or [str(i) for i in range(classifier.num_classes)]
    return _top_classes(classifier, names, targets, int(metadata["image_size"]), metadata.get("resize"), top_k)


def _top_classes(model, class_names, targets, size: int, resize, top_k: int) -> list[dict]:
    import numpy as np

    from keras_gdfr.saving import model_data_format

    files = image_files(targets)
    images, readable, bad = decode_files(files, size, model_data_format(model), resize)
    probs = probabilities(model, images) if images is not None else np.zeros((0, 0))
    k = min(top_k, probs.shape[1]) if len(probs) else 0
    predicted = {}
    for path, row in zip(readable, probs):
        order = np.argsort(-row, kind="stable")[:k]
        top = [{"class": class_names[i], "index": int(i), "probability": float(row[i])} for i in order]
        predicted[str(path)] = {"path": str(path), "top": top}
    return [predicted.get(str(path)) or {"path": str(path), "error": bad[str(path)]} for path in files]
